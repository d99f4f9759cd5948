/**
 * `npm run bench -- ipam [--count N] [--concurrency C] [--via rpc|http] [--rounds R] [--profile DIR] [--time-limit S]`
 *
 * Allocations/s of network-ipam next to a raw SQL pool on the same PostgreSQL, in the same run:
 * - ours: C concurrent requesters each ask network-ipam's allocation.create NATS RPC (the service's real
 *   interface; with --via http they POST /api/v2/network_allocations through the gateway instead) for
 *   distinct nodes, until N addresses are handed out.
 *   Each allocation runs the full §5.5 algorithm, writes its event to the outbox, and queues the role bind.
 * - baseline: C concurrent pg clients each looping `BEGIN; DELETE … WHERE address = (SELECT … ORDER BY
 *   address LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING; INSERT allocation; COMMIT` on a pool table.
 * network-ipam and the gateway run as their own processes, as the launcher runs them.
 * Both sides are checked for duplicates afterwards. Everything lives in a private database and bus
 * prefix, dropped at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startNatsServer } from '../infra/nats.js';
import { isListening, pickPort } from '../infra/ports.js';
import { Bus } from '../shared/bus/index.js';
import { health, inventoryEvents, ipamRpcs, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { nodeSummary } from '../test/helpers/fixtures.js';

const { values: opts } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '50' },
    via: { type: 'string', default: 'rpc' },
    rounds: { type: 'string', default: '2' },
    /** Directory for V8 CPU profiles of the service processes (for finding where time goes). */
    profile: { type: 'string' },
    'time-limit': { type: 'string', default: '120' },
  },
});
const count = Math.max(100, Math.min(60_000, Number(opts.count) || 10_000));
const width = Math.max(1, Math.min(500, Number(opts.concurrency) || 50));
const rounds = Math.max(1, Math.min(5, Number(opts.rounds) || 2));
const via = opts.via === 'http' ? 'http' : 'rpc';
const limitMs = Math.max(10, Number(opts['time-limit']) || 120) * 1000;
const say = (l: string) => process.stdout.write(`${l}\n`);
const log = createLogger('bench', { level: process.env.LOG_LEVEL ?? 'warn' });
const adminToken = randomBytes(18).toString('hex');

/** Runs `work(i)` for i in [0, n) with `width` requesters; stops with an error past the time limit. */
async function requesters(n: number, work: (i: number) => Promise<void>) {
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        if (Date.now() - started > limitMs) throw new Error(`time limit ${limitMs} ms hit`);
        await work(next++);
      }
    }),
  );
  return (Date.now() - started) / 1000;
}

const root = new URL('..', import.meta.url).pathname;

/** Starts one service the way the launcher does and waits until `ready()` says so. */
async function startService(name: string, env: Record<string, string>, ready: () => Promise<boolean>) {
  const prof = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}`] : [];
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', `${root}services/${name}/index.ts`], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const started = Date.now();
  while (!(await ready().catch(() => false))) {
    if (proc.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
    if (Date.now() - started > 60_000) {
      await stopService(proc);
      throw new Error(`${name} not ready after 60 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.once('exit', (code, signal) => {
    if (code || (signal && signal !== 'SIGTERM')) say(`${name} exited (${signal ?? code}): ${stderr}`);
  });
  return proc;
}

async function stopService(proc: ChildProcess) {
  if (proc.exitCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function natsUrl(stops: (() => Promise<void>)[]) {
  if (process.env.NATS_URL) return process.env.NATS_URL;
  if (await isListening('127.0.0.1', 4222)) return 'nats://127.0.0.1:4222';
  const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-`);
  const h = await startNatsServer({ dir, port: await pickPort(4497), log: say });
  stops.push(async () => {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return h.url;
}

const pgAdmin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function main() {
  const stops: (() => Promise<void>)[] = [];
  const tag = randomBytes(4).toString('hex');
  const dbName = `crowbar_ipam_bench_${tag}`;
  const prefix = `bench${tag}`;
  const admin = new pg.Client({ connectionString: pgAdmin });
  admin.on('error', (e) => say(`admin connection: ${e.message}`));
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  stops.push(async () => {
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  });
  const url = await natsUrl(stops);
  const databaseUrl = pgAdmin.replace(/\/[^/]*$/, `/${dbName}`);
  const env = {
    DATABASE_URL: databaseUrl,
    NATS_URL: url,
    CROWBAR_BUS_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    CROWBAR_BOOTSTRAP_ADMIN_NETWORK: 'false',
    CROWBAR_HTTP_HOST: '127.0.0.1',
    CROWBAR_HTTP_PORT: String(await pickPort(3397)),
    CROWBAR_ADMIN_TOKEN: adminToken,
  };
  stops.push(async () => {
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for await (const name of jsm.streams.names())
      if (name.startsWith(`${prefix.toUpperCase()}_`)) await jsm.streams.delete(name);
    await nc.close();
  });
  const children: ChildProcess[] = [];
  try {
    const bus = await Bus.connect({ url, prefix, source: 'bench-ipam', log, streams });
    stops.unshift(() => bus.close());
    const api = `http://127.0.0.1:${env.CROWBAR_HTTP_PORT}/api/v2`;
    children.push(
      await startService('network-ipam', env, async () => {
        await bus.request(health['network-ipam'], {}, { timeoutMs: 1000 });
        return true;
      }),
    );
    children.push(await startService('gateway', env, async () => (await fetch(`${api}/health`)).status > 0));
    // A plain keep-alive HTTP client: fetch's stream machinery would spend the bench's own CPU.
    const agent = new http.Agent({ keepAlive: true, maxSockets: width });
    const post = (path: string, body: unknown) =>
      new Promise<any>((resolve, reject) => {
        const payload = JSON.stringify(body);
        const req = http.request(
          `${api}${path}`,
          {
            method: 'POST',
            agent,
            headers: {
              authorization: `Bearer ${adminToken}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(payload),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              text += c;
            });
            res.on('end', () => {
              if (res.statusCode !== 201) reject(new Error(`${path}: ${res.statusCode} ${text}`));
              else resolve(JSON.parse(text));
            });
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    stops.unshift(async () => agent.destroy());
    // A /17 host range: 32,766 addresses, enough for the default count.
    await post('/networks', {
      name: 'bench',
      conduit: '10g0',
      ranges: [{ name: 'host', first: '198.18.128.1/17', last: '198.18.255.254/17' }],
    });

    const t0 = Date.now();
    for (let i = 0; i < count; i += 500) {
      const ids = Array.from({ length: Math.min(500, count - i) }, (_, k) => i + k + 1);
      await Promise.all(
        ids.map((id) =>
          bus.publish(inventoryEvents.nodeCreated, { node: nodeSummary(id, `n${id}.bench.example.com`) }),
        ),
      );
    }
    const check = new pg.Client({ connectionString: databaseUrl });
    check.on('error', (e) => say(`check connection: ${e.message}`));
    await check.connect();
    stops.unshift(() => check.end());
    for (;;) {
      const r = await check.query('select count(*)::int as n from network_ipam.nodes');
      if (r.rows[0].n >= count) break;
      if (Date.now() - t0 > limitMs) throw new Error('node projection did not fill in time');
      await new Promise((res) => setTimeout(res, 100));
    }
    say(`setup: ${count} node.created events projected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // Baseline table: the same database, a raw pool of free addresses.
    await check.query(`create table bench_pool (address inet primary key);
      create table bench_alloc (id serial primary key, node_id int not null unique, address inet not null unique);
      insert into bench_pool select '198.19.128.1'::inet + g from generate_series(0, 32765) g`);
    // Baseline connections exist only during its phases: the shared server allows 100 clients in all.
    const connectAll = () =>
      Promise.all(
        Array.from({ length: width }, async () => {
          const c = new pg.Client({ connectionString: databaseUrl });
          c.on('error', (e) => say(`baseline connection: ${e.message}`));
          await c.connect();
          return c;
        }),
      );
    const settle = () => new Promise((r) => setTimeout(r, 2500));

    // Rounds alternate ours and baseline so background load on the shared machine hits both alike.
    const seen = new Set<string>();
    let oursSec = 0;
    let baseSec = 0;
    const per = Math.ceil(count / rounds);
    for (let round = 0; round < rounds; round++) {
      const from = round * per;
      const n = Math.min(per, count - from);
      const o = await requesters(n, async (i) => {
        const req = { node: from + i + 1, network: 'bench' };
        const res =
          via === 'rpc'
            ? await bus.request(ipamRpcs.allocate, req, { timeoutMs: 30_000 })
            : await post('/network_allocations', req);
        for (const a of res.allocations) seen.add(a.address);
      });
      await settle();
      const clients = await connectAll();
      const free = clients.slice();
      const b = await requesters(n, async (i) => {
        const c = free.pop()!;
        try {
          await c.query('begin');
          const r = await c.query(
            'delete from bench_pool where address = (select address from bench_pool order by address limit 1 for update skip locked) returning address',
          );
          await c.query('insert into bench_alloc (node_id, address) values ($1, $2)', [
            from + i + 1,
            r.rows[0].address,
          ]);
          await c.query('commit');
        } finally {
          free.push(c);
        }
      });
      for (const c of clients) await c.end();
      await settle();
      say(`round ${round + 1}: ours ${(n / o).toFixed(0)}/s, baseline ${(n / b).toFixed(0)}/s (${n} each)`);
      oursSec += o;
      baseSec += b;
    }
    const stored = await check.query(
      'select count(*)::int as n, count(distinct address)::int as d from network_ipam.allocations',
    );
    const oursDup = count - seen.size + (stored.rows[0].n - stored.rows[0].d);
    const ours = count / oursSec;
    say(
      `ours (${via === 'http' ? 'HTTP POST /api/v2/network_allocations via the gateway' : 'NATS RPC allocation.create'}, ${width} requesters): ${count} allocations in ${oursSec.toFixed(2)} s = ${ours.toFixed(0)}/s; distinct ${seen.size}, stored ${stored.rows[0].n}, duplicates ${oursDup}`,
    );
    const base = await check.query(
      'select count(*)::int as n, count(distinct address)::int as d from bench_alloc',
    );
    const baseDup = count - base.rows[0].d;
    const baseline = count / baseSec;
    say(
      `baseline (raw SQL FOR UPDATE SKIP LOCKED pool, ${width} clients): ${count} in ${baseSec.toFixed(2)} s = ${baseline.toFixed(0)}/s; duplicates ${baseDup}`,
    );
    const ratio = ours / baseline;
    say(`ratio ${ratio.toFixed(3)} (goal ≥ 0.35)`);
    say(
      JSON.stringify({
        bench: 'ipam',
        ours: Math.round(ours),
        baseline: Math.round(baseline),
        ratio: Number(ratio.toFixed(3)),
        duplicates: oursDup + baseDup,
      }),
    );
  } finally {
    for (const c of children.reverse()) await stopService(c).catch(() => undefined);
    for (const s of stops) await s().catch((e: unknown) => say(`cleanup: ${String(e)}`));
  }
}

await main();
