/**
 * `npm run bench -- bus [--count N] [--rounds R] [--window W] [--concurrency C]`
 *
 * Messages/s of our dispatch path next to raw nats.js on the same server, in the same run:
 * - ours: `bus.publish(diag.ping)` into the DIAG work queue → typed `consume` (envelope and payload
 *   validated) → the handler publishes `diag.ponged` with `bus.publish` → ack;
 * - baseline: `js.publish` of the same bytes into a work-queue stream → `consumer.consume` → ack.
 * Both sides use the same publish window, the same pull batch, file storage and a msgID per publish.
 * Rounds alternate (baseline, ours, baseline, ours …) so background load hits both; the best round
 * of each side is reported. Everything lives under a private prefix whose streams are deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import {
  AckPolicy,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { startNatsServer } from '../infra/nats.js';
import { isListening, pickPort } from '../infra/ports.js';
import { Bus, causedBy, consume, encodeEnvelope, streamName } from '../shared/bus/index.js';
import { consumers, diag, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';

const { values: opts } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    window: { type: 'string', default: '256' },
    concurrency: { type: 'string', default: '256' },
    'time-limit': { type: 'string', default: '60' },
    /** For profiling one side alone; the JSON line needs both. */
    side: { type: 'string', default: 'both' },
  },
});
const count = Math.max(1, Math.min(1_000_000, Number(opts.count)));
const rounds = Math.max(1, Math.min(10, Number(opts.rounds)));
const window = Math.max(1, Math.min(10_000, Number(opts.window)));
const concurrency = Math.max(1, Math.min(10_000, Number(opts.concurrency)));
const phaseLimitMs = Math.max(1, Number(opts['time-limit'])) * 1000;
const side = opts.side;
const pullBatch = Math.max(concurrency * 2, 64);

const say = (l: string) => process.stdout.write(`${l}\n`);
const log = createLogger('bench', { level: process.env.LOG_LEVEL ?? 'warn' });

/** Runs `send(i)` for i in [0, n) with at most `width` in flight. */
async function pipelined(n: number, width: number, send: (i: number) => Promise<unknown>) {
  let next = 0;
  const lane = async () => {
    while (next < n) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, lane));
}

/** Resolves when `done()` is true; throws after the phase time limit. */
async function until(what: string, done: () => boolean, started: number) {
  while (!done()) {
    if (Date.now() - started > phaseLimitMs) throw new Error(`${what}: time limit ${phaseLimitMs} ms hit`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Messages per second, and this process's CPU time per message (µs) over the same interval. */
interface Figure {
  rate: number;
  cpuUs: number;
}
const show = (f: Figure) => `${Math.round(f.rate)} msg/s, client CPU ${f.cpuUs.toFixed(0)} µs/msg`;

interface Server {
  url: string;
  stop(): Promise<void>;
}

/** NATS_URL, else the local default if it answers, else a private nats-server in a temp dir. */
async function natsServer(): Promise<Server> {
  if (process.env.NATS_URL) return { url: process.env.NATS_URL, stop: async () => undefined };
  if (await isListening('127.0.0.1', 4222))
    return { url: 'nats://127.0.0.1:4222', stop: async () => undefined };
  const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-`);
  try {
    const h = await startNatsServer({ dir, port: await pickPort(4498), log: say });
    return {
      url: h.url,
      stop: async () => {
        await h.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Deletes a consumer once the server has applied its last acks (they travel asynchronously), so no
 * acknowledged message is left behind in the work queue for the next round. Bounded to 5 s.
 */
async function retire(jsm: JetStreamManager, stream: string, durable: string) {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const info = await jsm.consumers.info(stream, durable).catch(() => null);
    if (!info || (info.num_ack_pending === 0 && info.num_pending === 0)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await jsm.consumers.delete(stream, durable).catch(() => undefined);
}

async function deletePrefixStreams(jsm: JetStreamManager, prefix: string) {
  for await (const name of jsm.streams.names()) {
    if (name.startsWith(`${prefix.toUpperCase()}_`)) await jsm.streams.delete(name);
  }
}

/**
 * Raw nats.js: publish bytes to a work queue, consume, ack; with `withResult` the consumer also
 * publishes a result (the same work as our path, without our layer). Messages are taken either from
 * the async iterator or through a callback (nats.js offers both; the baseline is the faster one).
 */
async function rawRound(
  url: string,
  prefix: string,
  round: number,
  payload: Uint8Array,
  withResult: boolean,
  mode: 'iterator' | 'callback',
): Promise<Figure> {
  const nc = await connect({ servers: url, name: 'bench-baseline', noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = streamName(prefix, 'RAW');
    const subject = `${prefix}.raw.ping`;
    if (!(await jsm.streams.info(stream).catch(() => null)))
      await jsm.streams.add({
        name: stream,
        subjects: [`${prefix}.raw.>`],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        duplicate_window: nanos(120_000),
      });
    const durable = `raw-${round}-${withResult ? 'full' : 'plain'}-${mode}`;
    await jsm.streams.purge(stream, { filter: subject });
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      filter_subject: subject,
      ack_wait: nanos(30_000),
      max_deliver: 6,
      max_ack_pending: 10_000,
    });
    let acked = 0;
    let active = 0;
    const waiting: JsMsg[] = [];
    let slotFree: (() => void) | null = null;
    const work = (m: JsMsg) => {
      if (!withResult) {
        m.ack();
        acked++;
        return;
      }
      active++;
      void js.publish(`${prefix}.raw.pong`, m.data, { msgID: `pong-${durable}-${m.seq}` }).then(() => {
        m.ack();
        acked++;
        active--;
        const next = waiting.shift();
        if (next) work(next);
        else slotFree?.();
      });
    };
    const consumer = await js.consumers.get(stream, durable);
    let loop: Promise<void> = Promise.resolve();
    let messages: ConsumerMessages;
    if (mode === 'callback') {
      messages = await consumer.consume({
        max_messages: pullBatch,
        callback: (m) => {
          if (active < concurrency) work(m);
          else waiting.push(m);
        },
      });
    } else {
      messages = await consumer.consume({ max_messages: pullBatch });
      const it = messages;
      loop = (async () => {
        for await (const m of it) {
          work(m);
          while (active >= concurrency) await new Promise<void>((r) => (slotFree = r));
          if (acked + active >= count) break;
        }
      })();
    }
    const started = Date.now();
    const cpu0 = process.cpuUsage();
    await pipelined(count, window, (i) => js.publish(subject, payload, { msgID: `${durable}-${i}` }));
    await until('baseline', () => acked >= count, started);
    const secs = (Date.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await messages.close().catch(() => undefined);
    await loop;
    await retire(jsm, stream, durable);
    return { rate: count / secs, cpuUs: (cpu.user + cpu.system) / count };
  } finally {
    await nc.close();
  }
}

/** Our path: bus.publish → typed consume → handler publishes the result event → ack. */
async function oursRound(url: string, prefix: string, round: number) {
  const own = new Set(['EVENTS', 'DEAD', 'DIAG']);
  const bus = await Bus.connect({
    url,
    prefix,
    source: 'bench',
    log,
    streams: streams.filter((s) => own.has(s.name)),
  });
  try {
    const decl = consumers.diag(`bench-${round}`);
    await bus.jsm.streams.purge(streamName(prefix, decl.stream), { filter: bus.subject(diag.ping.subject) });
    const h = await consume(bus, {
      decl,
      log,
      concurrency,
      handlers: [
        [
          diag.ping,
          async (d, env) => {
            await bus.publish(diag.ponged, { seq: d.seq, by: 'bench' }, causedBy(env));
          },
        ],
      ],
    });
    const started = Date.now();
    const cpu0 = process.cpuUsage();
    await pipelined(count, window, (i) => bus.publish(diag.ping, { seq: i, note: 'bench' }));
    await until('ours', () => h.stats.handled + h.stats.deadLettered + h.stats.retried >= count, started);
    const secs = (Date.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await h.stop();
    await retire(bus.jsm, streamName(prefix, decl.stream), decl.durable);
    if (h.stats.handled !== count)
      throw new Error(`ours: handled ${h.stats.handled} of ${count} (${JSON.stringify(h.stats)})`);
    return { rate: count / secs, cpuUs: (cpu.user + cpu.system) / count };
  } finally {
    await bus.close();
  }
}

async function main() {
  const server = await natsServer();
  const prefix = `bench${randomBytes(4).toString('hex')}`;
  const admin = await connect({ servers: server.url, name: 'bench-admin' });
  const jsm = await jetstreamManager(admin);
  // The baseline sends bytes the same size as our envelopes.
  const sample = {
    id: '00000000-0000-4000-8000-000000000000',
    type: 'diag.ping.v1',
    time: new Date().toISOString(),
    source: 'bench',
    correlationId: '00000000-0000-4000-8000-000000000000',
    causationId: null,
    data: { seq: 12345, note: 'bench' },
  };
  const payload = encodeEnvelope(sample);
  say(
    `bus bench: ${count} msgs x ${rounds} rounds per side, publish window ${window}, consume concurrency ${concurrency}, pull batch ${pullBatch}, NATS ${server.url}, prefix ${prefix}`,
  );
  const ours: Figure[] = [];
  const base: Figure[] = [];
  const full: Figure[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      if (side !== 'ours') {
        const it = await rawRound(server.url, prefix, r, payload, false, 'iterator');
        say(`  round ${r + 1} raw nats.js publish+consume+ack, iterator: ${show(it)}`);
        const cb = await rawRound(server.url, prefix, r, payload, false, 'callback');
        say(`  round ${r + 1} raw nats.js publish+consume+ack, callback: ${show(cb)}`);
        base.push(it.rate >= cb.rate ? it : cb);
        full.push(await rawRound(server.url, prefix, r, payload, true, 'callback'));
        say(`  round ${r + 1} raw nats.js with result publish (reference): ${show(full[r]!)}`);
      }
      if (side !== 'baseline') {
        ours.push(await oursRound(server.url, prefix, r));
        say(`  round ${r + 1} ours (publish → typed consume → result publish → ack): ${show(ours[r]!)}`);
      }
    }
  } finally {
    await deletePrefixStreams(jsm, prefix).catch((e: unknown) => say(`cleanup failed: ${String(e)}`));
    await admin.close();
    await server.stop();
  }
  if (side !== 'both') return;
  const best = (xs: Figure[]) => Math.round(Math.max(...xs.map((x) => x.rate)));
  const o = best(ours);
  const b = best(base);
  const ratio = Math.round((o / b) * 100) / 100;
  say(
    `best: ours ${o} msg/s, baseline (faster raw idiom) ${b} msg/s, ratio ${ratio} (goal ≥ 0.6); raw with result publish ${best(full)} msg/s`,
  );
  say(JSON.stringify({ bench: 'bus', ours: o, baseline: b, ratio }));
}

await main();
