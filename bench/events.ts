/**
 * `npm run bench -- events [--subscribers 100] [--rate 1000] [--seconds 10] [--processes 4]`
 *
 * The gateway's event stream under load: S subscribers on `GET /api/v2/events?filter=node.changed`
 * (the gateway as its own process, the clients spread over P processes of their own) while R
 * `node.changed` events a second go in through the real path for T seconds: written to an outbox table
 * in transactions of 10 (shared/db/outbox.ts, the `time` stamped in the transaction as inventory stamps
 * it), published by the outbox relay into the EVENTS stream (kicked after each commit, as inventory
 * kicks it), then read by the gateway.
 * - `p50_ms`/`p99_ms`/`max_ms`: from each event's `time` to its arrival at a client, over every
 *   delivery (goal p99 < 100);
 * - `nats_p50_ms`/`nats_p99_ms`: the same for a plain NATS subscriber in the bench's process, the part
 *   of the time that is the outbox's, the relay's and JetStream's;
 * - `lost`/`duplicated`: summed over the subscribers, events not received or received twice (goal 0);
 * - `resume`: one more subscriber leaves halfway and comes back with `Last-Event-ID` after 500 ms; it
 *   must have every event exactly once.
 * With `--profile DIR`, the gateway writes a V8 CPU profile into DIR when it stops (bench/_cpu-profile.mjs).
 * Ends with one JSON line.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pgSchema } from 'drizzle-orm/pg-core';
import { pickPort } from '../infra/ports.js';
import type { Envelope } from '../shared/bus/envelope.js';
import { inventoryEvents, wireType } from '../shared/catalogue/index.js';
import { openDatabase } from '../shared/db/database.js';
import { enqueueOutbox, outboxTable, startOutboxRelay } from '../shared/db/outbox.js';
import { createLogger } from '../shared/log.js';
import { benchBus, benchCleanups, benchEnvironment } from '../test/helpers/bench-env.js';
import { type ServiceProcess, spawnService } from '../test/helpers/process.js';

const { values: o } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '100' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    processes: { type: 'string', default: '4' },
    profile: { type: 'string' },
    // Internal: this file run as a process of subscribers (`--client <url> --count N [--resumer]`).
    client: { type: 'string' },
    count: { type: 'string', default: '1' },
    resumer: { type: 'boolean', default: false },
  },
});
const SUBSCRIBERS = Math.max(1, Math.min(1000, Number(o.subscribers)));
const RATE = Math.max(10, Math.min(10_000, Number(o.rate)));
const SECONDS = Math.max(1, Math.min(60, Number(o.seconds)));
const PROCESSES = Math.max(1, Math.min(16, Number(o.processes)));
const BATCH = 10;
const say = (l: string) => process.stdout.write(`${l}\n`);
const token = 'bench-admin-token-0123456789';

/** Latencies in 0.1 ms buckets up to 10 s, the rest in the last one. */
const buckets = 100_000;

const blank = Buffer.from('\n\n');
const timeKey = Buffer.from('"time":"');
const connected = Buffer.from(': connected');

/** What a subscriber process reports. */
interface ClientReport {
  hist: number[];
  subscribers: { received: number; distinct: number }[];
  resume?: { received: number; distinct: number; reconnects: number };
}

/**
 * One SSE subscriber over a plain HTTP request: counts every event by its id (the stream sequence) and
 * the time from its envelope's `time` to its arrival.
 */
function subscribe(
  url: string,
  hist: Uint32Array,
  seen: Set<number>,
  counts: { received: number },
  lastEventId?: number,
): Promise<{ close(): void; last(): number }> {
  return new Promise((resolve, reject) => {
    let last = lastEventId ?? 0;
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
    const req = http.get(url, { headers, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET ${url}: ${res.statusCode}`));
      res.on('error', () => undefined);
      // Bytes, not text: a client process reads 25,000 events a second, and only needs two fields.
      let buf: Buffer = Buffer.alloc(0);
      let ready = false;
      res.on('data', (chunk: Buffer) => {
        const now = Date.now();
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        let start = 0;
        let end = buf.indexOf(blank);
        while (end >= 0) {
          if (buf[start] === 0x69 && buf[start + 1] === 0x64 && buf[start + 2] === 0x3a) {
            // `id: <seq>\ndata: {…"time":"<24 characters>"…}`
            let id = 0;
            for (let i = start + 4; buf[i] !== 0x0a; i++) id = id * 10 + buf[i]! - 0x30;
            const t = buf.indexOf(timeKey, start);
            const ms = now - Date.parse(buf.toString('latin1', t + timeKey.length, t + timeKey.length + 24));
            hist[Math.min(buckets - 1, Math.max(0, Math.round(ms * 10)))]!++;
            counts.received++;
            seen.add(id);
            last = id;
          } else if (!ready && buf.subarray(start, end).includes(connected)) {
            ready = true;
            resolve({ close: () => req.destroy(), last: () => last });
          }
          start = end + 2;
          end = buf.indexOf(blank, start);
        }
        buf = start >= buf.length ? Buffer.alloc(0) : buf.subarray(start);
      });
    });
    req.on('error', (err) => {
      if (!('code' in err) || err.code !== 'ECONNRESET') reject(err);
    });
  });
}

/** A process of `count` subscribers: says `ready` once all are connected, reports when told `stop`. */
async function runClients(url: string, count: number, resumer: boolean): Promise<void> {
  const hist = new Uint32Array(buckets);
  const subs = Array.from({ length: count }, () => ({ seen: new Set<number>(), counts: { received: 0 } }));
  const open = await Promise.all(subs.map((s) => subscribe(url, hist, s.seen, s.counts)));
  const resume = { seen: new Set<number>(), counts: { received: 0 }, reconnects: 0 };
  let resumed: { close(): void; last(): number } | undefined;
  if (resumer) resumed = await subscribe(url, hist, resume.seen, resume.counts);
  process.send?.({ ready: true });
  process.on('message', (m: { leave?: boolean; stop?: boolean }) => {
    void (async () => {
      if (m.leave && resumed) {
        // Leave, stay away while events go on, and come back where the last one left off.
        resumed.close();
        const last = resumed.last();
        await new Promise((r) => setTimeout(r, 500));
        resume.reconnects++;
        resumed = await subscribe(url, hist, resume.seen, resume.counts, last);
      }
      if (m.stop) {
        for (const c of open) c.close();
        resumed?.close();
        const report: ClientReport = {
          hist: [...hist],
          subscribers: subs.map((s) => ({ received: s.counts.received, distinct: s.seen.size })),
          ...(resumer
            ? {
                resume: {
                  received: resume.counts.received,
                  distinct: resume.seen.size,
                  reconnects: resume.reconnects,
                },
              }
            : {}),
        };
        process.send?.(report, () => process.exit(0));
      }
    })();
  });
}

async function main(): Promise<void> {
  const scope = benchCleanups();
  try {
    const env = await benchEnvironment(scope, say);
    const port = await pickPort(3498);
    const procs: ServiceProcess[] = [];
    scope.defer(async () => {
      for (const p of procs.reverse()) await p.stop();
    });
    procs.push(
      await spawnService('gateway', {
        DATABASE_URL: env.databaseUrl,
        NATS_URL: env.natsUrl,
        CROWBAR_BUS_PREFIX: env.prefix,
        CROWBAR_ADMIN_TOKEN: token,
        CROWBAR_HTTP_HOST: '127.0.0.1',
        CROWBAR_HTTP_PORT: String(port),
        ...(o.profile
          ? {
              NODE_OPTIONS: `--import ${fileURLToPath(new URL('./_cpu-profile.mjs', import.meta.url))}`,
              CROWBAR_BENCH_PROFILE_DIR: o.profile,
            }
          : {}),
      }),
    );
    const url = `http://127.0.0.1:${port}/api/v2/events?filter=node.changed`;

    // The writer's side: an outbox table of its own, and the relay that publishes it.
    const database = openDatabase(env.databaseUrl, { max: 5, applicationName: 'bench-events' });
    scope.defer(() => database.close());
    await database.pool.query(`create schema bench;
      create table bench.outbox (id bigserial primary key, subject text not null, envelope jsonb not null,
        created_at timestamptz not null default now())`);
    const outbox = outboxTable(pgSchema('bench'));
    const log = createLogger('bench', { level: 'warn' });
    const bus = await benchBus(scope, env, 'bench-events');
    const relay = startOutboxRelay({
      database,
      table: outbox,
      channel: 'bench_outbox',
      bus,
      log,
      pollMs: 1000,
    });
    scope.defer(() => relay.stop());

    // The subscribers, in processes of their own; the first also runs the one that leaves and resumes.
    const self = fileURLToPath(import.meta.url);
    const per = Math.ceil(SUBSCRIBERS / PROCESSES);
    const children = Array.from({ length: Math.min(PROCESSES, SUBSCRIBERS) }, (_, i) => {
      const count = Math.min(per, SUBSCRIBERS - i * per);
      return fork(self, ['--client', url, '--count', String(count), ...(i === 0 ? ['--resumer'] : [])], {
        execArgv: ['--import', 'tsx'],
      });
    });
    scope.defer(async () => {
      for (const c of children) c.kill();
    });
    const reports = children.map(
      (c) =>
        new Promise<ClientReport>((resolve, reject) => {
          c.on('message', (m: ClientReport | { ready: true }) => {
            if (!('ready' in m)) resolve(m);
          });
          c.once('exit', (code) => reject(new Error(`a subscriber process exited (${code})`)));
        }),
    );
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            c.on('message', (m: { ready?: boolean }) => m.ready && resolve());
            c.once('exit', (code) =>
              reject(new Error(`a subscriber process exited (${code}) before it was ready`)),
            );
          }),
      ),
    );
    say(
      `events bench: ${SUBSCRIBERS} subscribers (+1 that resumes) in ${children.length} processes; ${RATE} node.changed/s for ${SECONDS} s through an outbox`,
    );

    const total = RATE * SECONDS;
    const subject = inventoryEvents.nodeChanged.subject;
    const type = wireType(inventoryEvents.nodeChanged);
    const example = inventoryEvents.nodeChanged.example;
    // The same events as any NATS subscriber sees them: how much of the time is the outbox's and relay's.
    const natsHist = new Uint32Array(buckets);
    const natsSub = bus.nc.subscribe(bus.subject(subject), {
      callback: (_err, m) => {
        const text = m.string();
        const t = text.indexOf('"time":"');
        const ms = Date.now() - Date.parse(text.slice(t + 8, t + 32));
        natsHist[Math.min(buckets - 1, Math.max(0, Math.round(ms * 10)))]!++;
      },
    });
    let written = 0;
    let inFlight = 0;
    const t0 = Date.now();
    let left = false;
    // Transactions of BATCH events at the rate's pace, up to 4 at once (as several writers would commit).
    const write = async (first: number, n: number) => {
      await database.db.transaction(async (tx) => {
        const entries = Array.from({ length: n }, (_, k) => {
          const id = first + k;
          const env: Envelope = bus.envelope(type, {
            ...example,
            node: { ...example.node, id, name: `n${id}.bench.crowbar.test` },
          });
          return { subject, envelope: env };
        });
        await enqueueOutbox(tx, outbox, entries);
      });
      void relay.flush();
    };
    const writes: Promise<void>[] = [];
    while (written < total) {
      const due = Math.min(total, Math.floor(((Date.now() - t0) / 1000) * RATE) + BATCH);
      while (written < due && inFlight < 4) {
        const n = Math.min(BATCH, due - written);
        inFlight++;
        writes.push(write(written + 1, n).finally(() => inFlight--));
        written += n;
      }
      if (!left && written >= total / 2) {
        left = true;
        children[0]!.send({ leave: true });
      }
      await new Promise((r) => setTimeout(r, inFlight < 4 ? 5 : 1));
    }
    await Promise.all(writes);
    const took = (Date.now() - t0) / 1000;
    await relay.flush();
    // Everything published; give the last events time to arrive (well past any goal).
    await new Promise((r) => setTimeout(r, 2000));
    natsSub.unsubscribe();
    for (const c of children) c.send({ stop: true });
    const got = await Promise.all(reports);

    const hist = new Array<number>(buckets).fill(0);
    for (const r of got) for (let i = 0; i < buckets; i++) hist[i]! += r.hist[i]!;
    const deliveries = hist.reduce((a, b) => a + b, 0);
    const pctOf = (h: ArrayLike<number>, p: number) => {
      let all = 0;
      for (let i = 0; i < buckets; i++) all += h[i]!;
      const want = Math.ceil(all * p);
      let n = 0;
      for (let i = 0; i < buckets; i++) {
        n += h[i]!;
        if (n >= want) return i / 10;
      }
      return buckets / 10;
    };
    const pct = (p: number) => pctOf(hist, p);
    let maxMs = 0;
    for (let i = buckets - 1; i >= 0; i--)
      if (hist[i]! > 0) {
        maxMs = i / 10;
        break;
      }
    const subs = got.flatMap((r) => r.subscribers);
    const lost = subs.reduce((a, s) => a + (total - s.distinct), 0);
    const duplicated = subs.reduce((a, s) => a + (s.received - s.distinct), 0);
    const resume = got.find((r) => r.resume)!.resume!;
    const resumeOk = resume.distinct === total && resume.received === total && resume.reconnects === 1;
    say(
      `${written} events written in ${took.toFixed(1)} s (${(written / took).toFixed(0)}/s); ${deliveries} deliveries`,
    );
    say(`time → a plain NATS subscriber: p50 ${pctOf(natsHist, 0.5)} ms, p99 ${pctOf(natsHist, 0.99)} ms`);
    say(
      `time → client: p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${maxMs} ms; lost ${lost}, duplicated ${duplicated}`,
    );
    say(
      `resumed subscriber: ${resume.distinct} distinct of ${total}, ${resume.received - resume.distinct} twice, after ${resume.reconnects} reconnect`,
    );
    say(
      JSON.stringify({
        bench: 'events',
        subscribers: SUBSCRIBERS,
        rate: RATE,
        seconds: SECONDS,
        events: total,
        achieved_rate: Math.round(written / took),
        deliveries,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: maxMs,
        nats_p50_ms: pctOf(natsHist, 0.5),
        nats_p99_ms: pctOf(natsHist, 0.99),
        lost,
        duplicated,
        resume_exactly_once: resumeOk,
        goal_p99_ms: 100,
      }),
    );
  } finally {
    await scope.run();
  }
}

if (o.client) await runClients(o.client, Number(o.count), o.resumer);
else await main();
