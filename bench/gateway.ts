/**
 * `npm run bench -- gateway [--nodes 1000] [--duration 10] [--connections 16] [--profile DIR]`
 *
 * The gateway's cost per request, with wrk (the Debian package, installed when missing) at the same
 * connections and duration for each pair, in one run:
 * - `nodes`: `GET /api/v2/nodes?limit=1000` with N nodes (one noderole each) through the gateway → NATS
 *   → inventory, both services as their own processes as the launcher runs them, next to a plain
 *   `node:http` + `pg` process running the same query on the same database (a pool of the same size)
 *   and answering the same JSON; `ratio` = gateway / plain (goal ≥ 0.5).
 * - `plain`: the gateway's cheapest answer that goes through its whole middleware chain — an
 *   unauthenticated `GET /api/v2/nodes`, refused with 401 before any service is asked — next to a
 *   `node:http` process answering the same 401 JSON; `ratio_plain` = gateway / plain (goal ≥ 0.9). A
 *   third member, a bare Hono app on @hono/node-server answering the same 401 from one handler, is the
 *   framework's own floor: `ratio_hono` = bare Hono / plain (the best the gateway could do on the
 *   framework it is built on) and `gateway_of_hono` = gateway / bare Hono (what the gateway's own
 *   middleware and routes cost).
 * `--pairs nodes` or `--pairs json` measures one pair only. Both answers of each pair are checked to be the same before anything is measured. With `--profile`,
 * the gateway, inventory and the plain server write V8 CPU profiles (bench/_cpu-profile.mjs) into DIR
 * when they stop.
 * Ends with one JSON line.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import pg from 'pg';
import { ensureDebianProgram } from '../infra/packages.js';
import { pickPort } from '../infra/ports.js';
import { nodeState } from '../services/inventory/engine/states.js';
import { coreBarclampDir, testBarclampDir } from '../services/inventory/service.js';
import type { NoderoleState } from '../shared/catalogue/index.js';
import { type InventoryOp, type InventoryOpRequest, inventoryOpRpcs } from '../shared/catalogue/index.js';
import { benchBus, benchCleanups, benchEnvironment } from '../test/helpers/bench-env.js';
import { type ServiceProcess, spawnService } from '../test/helpers/process.js';

const { values: o } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '12' },
    connections: { type: 'string', default: '16' },
    profile: { type: 'string' },
    /** Which pairs to measure (for profiling one of them): `nodes`, `json` or both. */
    pairs: { type: 'string', default: 'nodes,json' },
    // Internal: this file run as the plain baseline server (`--serve-plain <database url>`).
    'serve-plain': { type: 'string' },
    'pool-max': { type: 'string', default: '5' },
  },
});
const NODES = Math.max(1, Math.min(10_000, Number(o.nodes)));
const DURATION = Math.max(3, Math.min(60, Number(o.duration)));
const SLICES = 3;
const CONNECTIONS = Math.max(1, Math.min(256, Number(o.connections)));
const POOL_MAX = Math.max(1, Math.min(200, Number(o['pool-max'])));
const PAIRS = new Set(o.pairs.split(','));
const say = (l: string) => process.stdout.write(`${l}\n`);

/** The body the gateway answers a request without a token (auth.ts), byte for byte. */
const unauthorizedBody = JSON.stringify({
  code: 'unauthorized',
  message: 'missing operator token (Authorization: Bearer <token>)',
});

/**
 * The baseline: `node:http` and a `pg` pool, `GET /nodes?limit=N` running inventory's node list query
 * (services/inventory/engine/queries.ts, `listNodes`) and answering what inventory answers; anything
 * else, the gateway's 401. Run as its own process, as the gateway and inventory are.
 */
async function servePlain(databaseUrl: string): Promise<void> {
  // Ids are bigints, read as numbers as shared/db/database.ts has every service read them.
  pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
  const pool = new pg.Pool({ connectionString: databaseUrl, max: POOL_MAX });
  const query = `select n.id, n.name, n.description, n.admin, n.system, n.alive, n.available, n.bootenv,
      n.deployment_id as "deploymentId", d.name as deployment,
      coalesce((select array_agg(nr.state) from inventory.noderoles nr where nr.node_id = n.id), '{}') as states
    from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id order by n.id limit $1`;
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/nodes')) {
      const limit = Number(new URL(url, 'http://x').searchParams.get('limit') ?? '100');
      pool
        .query({ name: 'nodes', text: query, values: [limit + 1] })
        .then((r) => {
          const rows = r.rows as { id: number; states: NoderoleState[] }[];
          const page = rows.slice(0, limit);
          const next = rows.length > limit ? String(page.at(-1)!.id) : null;
          const body = JSON.stringify({
            nodes: page.map((n) => ({ ...n, state: nodeState(n.states) })),
            next,
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        })
        .catch((err: unknown) => {
          res
            .writeHead(500, { 'content-type': 'application/json' })
            .end(JSON.stringify({ err: String(err) }));
        });
      return;
    }
    res.writeHead(401, { 'content-type': 'application/json' }).end(unauthorizedBody);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // The framework's own floor: a bare Hono app on @hono/node-server, as the gateway is served, with
  // one handler answering the same 401 and nothing else (no middleware, no routes to match).
  const bare = new Hono();
  bare.all('*', (c) => c.body(unauthorizedBody, 401, { 'content-type': 'application/json' }));
  const honoServer = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: bare.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const portOf = (x: http.Server | ReturnType<typeof serve>) => {
    const a = x.address();
    return typeof a === 'object' && a ? a.port : 0;
  };
  say(`plain listening ${portOf(server)} hono ${portOf(honoServer)}`);
  process.on('SIGTERM', () => {
    server.close();
    honoServer.close();
    void pool.end().then(() => process.exit(0));
  });
}

interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

/** `wrk -c C -d D --latency`; its figures parsed from what it prints. */
function wrk(wrkPath: string, url: string, seconds: number, headers: string[] = []): Promise<WrkResult> {
  const args = [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    // Not wrk's 2 s: a slow answer under load is measured, not counted as a socket error.
    '--timeout',
    '10s',
    '--latency',
    ...headers.flatMap((h) => ['-H', h]),
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(wrkPath, args, { timeout: (seconds + 30) * 1000 }, (err, stdout) => {
      if (err) return reject(new Error(`wrk ${url} failed: ${err.message}`));
      const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? 'NaN');
      const ms = (re: RegExp) => {
        const m = re.exec(stdout);
        if (!m) return Number.NaN;
        const unit = { us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'] ?? Number.NaN;
        return Number(m[1]) * unit;
      };
      const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      resolve({
        rps: num(/Requests\/sec:\s+([\d.]+)/),
        requests: num(/(\d+) requests in/),
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
        errors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
        p50Ms: ms(/\s50%\s+([\d.]+)(us|ms|s)/),
        p99Ms: ms(/\s99%\s+([\d.]+)(us|ms|s)/),
      });
    });
  });
}

async function main(): Promise<void> {
  const scope = benchCleanups();
  try {
    const wrkPath = ensureDebianProgram({
      candidates: ['/usr/bin/wrk'],
      pkg: 'wrk',
      why: 'the gateway bench',
      log: say,
    });
    const env = await benchEnvironment(scope, say);
    const token = 'bench-admin-token-0123456789';
    const port = await pickPort(3497);
    const preload = fileURLToPath(new URL('./_cpu-profile.mjs', import.meta.url));
    const profile = o.profile
      ? { NODE_OPTIONS: `--import ${preload}`, CROWBAR_BENCH_PROFILE_DIR: o.profile }
      : {};
    if (o.profile) mkdirSync(o.profile, { recursive: true });
    const base = {
      DATABASE_URL: env.databaseUrl,
      NATS_URL: env.natsUrl,
      CROWBAR_BUS_PREFIX: env.prefix,
      CROWBAR_ADMIN_NODE: 'false',
      CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
      CROWBAR_DB_POOL_MAX: String(POOL_MAX),
      ...profile,
    };
    const procs: ServiceProcess[] = [];
    scope.defer(async () => {
      for (const p of procs.reverse()) await p.stop();
    });
    procs.push(await spawnService('inventory', base));
    procs.push(
      await spawnService('gateway', {
        ...base,
        CROWBAR_ADMIN_TOKEN: token,
        CROWBAR_HTTP_HOST: '127.0.0.1',
        CROWBAR_HTTP_PORT: String(port),
      }),
    );
    const gateway = `http://127.0.0.1:${port}/api/v2`;

    const bus = await benchBus(scope, env);
    const op = <K extends InventoryOp>(name: K, args: InventoryOpRequest<K>) =>
      bus.request(inventoryOpRpcs[name], args, { timeoutMs: 60_000 });
    const t0 = Date.now();
    await op('deployment.create', { name: 'bench' });
    let made = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (made < NODES) {
          const i = made++;
          const name = `g${String(i).padStart(5, '0')}.bench.crowbar.test`;
          const n = await op('node.create', { name, alive: true, available: true, deployment: 'bench' });
          await op('noderole.create', { node: n.id, role: 'bench-r01' });
        }
      }),
    );
    say(
      `gateway bench: ${NODES} nodes (one noderole each) made in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    // The plain baseline, a process of its own like the gateway.
    const plainProc = await new Promise<{ port: number; honoPort: number; stop(): Promise<void> }>(
      (resolve, reject) => {
        const child = execFile(
          process.execPath,
          [
            '--import',
            'tsx',
            fileURLToPath(import.meta.url),
            '--serve-plain',
            env.databaseUrl,
            '--pool-max',
            String(POOL_MAX),
          ],
          { env: { ...process.env, ...profile } },
        );
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        let out = '';
        child.stdout?.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /plain listening (\d+) hono (\d+)/.exec(out);
          if (m)
            resolve({
              port: Number(m[1]),
              honoPort: Number(m[2]),
              stop: async () => {
                child.kill('SIGTERM');
                await exited;
              },
            });
        });
        child.once('exit', (code) => reject(new Error(`the plain server exited (${code}) before listening`)));
      },
    );
    scope.defer(() => plainProc.stop());
    const plain = `http://127.0.0.1:${plainProc.port}`;
    const bareHono = `http://127.0.0.1:${plainProc.honoPort}`;

    // Same answers first: the nodes list (same nodes, same fields) and the 401.
    const auth = `authorization: Bearer ${token}`;
    const listUrl = `${gateway}/nodes?limit=${NODES}`;
    const ours = await fetch(listUrl, { headers: { authorization: `Bearer ${token}` } });
    const oursBody = (await ours.json()) as { nodes: unknown[] };
    const theirs = await fetch(`${plain}/nodes?limit=${NODES}`);
    const theirsBody = (await theirs.json()) as { nodes: unknown[] };
    if (ours.status !== 200 || oursBody.nodes.length !== NODES)
      throw new Error(`the gateway answered ${ours.status} with ${oursBody.nodes?.length} nodes`);
    if (!isDeepStrictEqual(oursBody, theirsBody))
      throw new Error(
        `the plain handler does not answer what the gateway answers for the nodes list: ${JSON.stringify(oursBody.nodes[0])} ${JSON.stringify(theirsBody.nodes?.[0])}`,
      );
    const bytes = Buffer.byteLength(JSON.stringify(oursBody));
    const refused = await fetch(`${gateway}/nodes`);
    const refusedBody = await refused.text();
    if (refused.status !== 401 || refusedBody !== unauthorizedBody)
      throw new Error(`the gateway's 401 is not the baseline's: ${refused.status} ${refusedBody}`);
    const bare = await fetch(`${bareHono}/api/v2/nodes`);
    if (bare.status !== 401 || (await bare.text()) !== unauthorizedBody)
      throw new Error(`the bare Hono app's 401 is not the baseline's: ${bare.status}`);

    /**
     * One group: a second of warm-up each, then `SLICES` turns of DURATION/SLICES seconds, each member
     * in turn, so a neighbour's load on this machine falls on all alike. req/s is all the requests over
     * all the time; p99 the worst turn's.
     */
    const turns = async (what: string[], urls: string[], headers: string[][], ok: number) => {
      for (const [i, url] of urls.entries()) await wrk(wrkPath, url, 1, headers[i]);
      const sums = urls.map(() => ({ requests: 0, seconds: 0, p50: [] as number[], p99: 0 }));
      for (let turn = 0; turn < SLICES; turn++)
        for (const [i, url] of urls.entries()) {
          const seconds = DURATION / SLICES;
          const r = await wrk(wrkPath, url, seconds, headers[i]);
          const wrong = ok === 200 ? r.non2xx : r.requests - r.non2xx;
          if (r.errors > 0 || wrong > 0)
            throw new Error(
              `${what[i]}: ${r.errors} socket errors, ${wrong} of ${r.requests} answers not ${ok}`,
            );
          const sum = sums[i]!;
          sum.requests += r.requests;
          sum.seconds += seconds;
          sum.p50.push(r.p50Ms);
          sum.p99 = Math.max(sum.p99, r.p99Ms);
        }
      return sums.map((sum, i) => {
        const rps = sum.requests / sum.seconds;
        const p50 = sum.p50.sort((a, b) => a - b)[Math.floor(sum.p50.length / 2)]!;
        say(
          `${what[i]!.padEnd(28)} ${rps.toFixed(0).padStart(7)} req/s  p50 ${p50.toFixed(2)} ms  p99 ${sum.p99.toFixed(2)} ms`,
        );
        return { rps, p99Ms: sum.p99 };
      });
    };
    say(
      `wrk -t1 -c${CONNECTIONS}, ${DURATION} s for each (${SLICES} turns of ${DURATION / SLICES} s, taking turns); nodes list ${(bytes / 1024).toFixed(0)} KiB`,
    );
    const none = { rps: Number.NaN, p99Ms: Number.NaN };
    const [gwNodes = none, plainNodes = none] = PAIRS.has('nodes')
      ? await turns(
          ['gateway nodes list', 'plain node:http + pg'],
          [listUrl, `${plain}/nodes?limit=${NODES}`],
          [[auth], []],
          200,
        )
      : [];
    const [gwJson = none, plainJson = none, honoJson = none] = PAIRS.has('json')
      ? await turns(
          ['gateway 401 (no token)', 'plain node:http 401', 'bare hono 401'],
          [`${gateway}/nodes`, `${plain}/refused`, `${bareHono}/api/v2/nodes`],
          [[], [], []],
          401,
        )
      : [];
    const r2 = (x: number) => Math.round(x * 100) / 100;
    say(
      JSON.stringify({
        bench: 'gateway',
        nodes: NODES,
        connections: CONNECTIONS,
        duration_s: DURATION,
        gateway_nodes_rps: Math.round(gwNodes.rps),
        plain_nodes_rps: Math.round(plainNodes.rps),
        ratio: r2(gwNodes.rps / plainNodes.rps),
        gateway_json_rps: Math.round(gwJson.rps),
        plain_json_rps: Math.round(plainJson.rps),
        ratio_plain: r2(gwJson.rps / plainJson.rps),
        hono_json_rps: Math.round(honoJson.rps),
        ratio_hono: r2(honoJson.rps / plainJson.rps),
        gateway_of_hono: r2(gwJson.rps / honoJson.rps),
        gateway_nodes_p99_ms: r2(gwNodes.p99Ms),
        plain_nodes_p99_ms: r2(plainNodes.p99Ms),
        goal_ratio: 0.5,
        goal_ratio_plain: 0.9,
      }),
    );
  } finally {
    await scope.run();
  }
}

if (o['serve-plain']) await servePlain(o['serve-plain']);
else await main();
