import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus, consume, encodeEnvelope, reject, retry, streamName } from '../shared/bus/index.js';
import { JsPublisher } from '../shared/bus/publisher.js';
import { type ConsumerDecl, diag, rpc, streams, system } from '../shared/catalogue/index.js';
import { NotFoundError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';

let t: TestEnv;
let bus: Bus;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  t = await createTestEnv();
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'bus-test', log, streams });
});
afterAll(async () => {
  await bus?.close();
  await t?.cleanup();
});

const decl = (durable: string, maxDeliver = 3): ConsumerDecl => ({
  stream: 'DIAG',
  durable,
  filterSubject: diag.ping.subject,
  ackWaitMs: 5000,
  maxDeliver,
});

async function until<T>(what: string, f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Work-queue streams allow one consumer per subject, so each test removes its own when done — once the
 * server has applied its last acks/terms, which travel asynchronously: a message still pending when the
 * consumer goes would stay in the stream and reach the next test's consumer.
 */
async function drop(h: { stop(): Promise<void> }, durable: string) {
  await h.stop();
  const stream = streamName(t.prefix, 'DIAG');
  await until('consumer idle', async () => {
    const info = await bus.jsm.consumers.info(stream, durable);
    return info.num_ack_pending === 0 && info.num_pending === 0;
  });
  await bus.jsm.consumers.delete(stream, durable);
}

async function deadCount() {
  const info = await bus.jsm.streams.info(streamName(t.prefix, 'DEAD'));
  return info.state.messages;
}

describe('bus', () => {
  it('applies stream declarations idempotently', async () => {
    const again = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'bus-test-2', log, streams });
    await again.close();
    const info = await bus.jsm.streams.info(streamName(t.prefix, 'EVENTS'));
    expect(info.config.subjects).toEqual([`${t.prefix}.evt.>`]);
  });

  it('stores a publish retried with the same message id once', async () => {
    const before = (await bus.jsm.streams.info(streamName(t.prefix, 'EVENTS'))).state.messages;
    for (let i = 0; i < 3; i++) await bus.publish(diag.ponged, { seq: 7, by: 'x' }, { msgId: 'pong-7' });
    await bus.publish(diag.ponged, { seq: 8, by: 'x' }, { msgId: 'pong-8' });
    const after = (await bus.jsm.streams.info(streamName(t.prefix, 'EVENTS'))).state.messages;
    expect(after - before).toBe(2);
  });

  it('refuses to publish an invalid payload, naming the field', async () => {
    await expect(bus.publish(diag.ping, { seq: -1 } as never)).rejects.toThrow(/seq/);
  });

  it('dead-letters a malformed message and keeps serving the next one', async () => {
    const seen: number[] = [];
    const h = await consume(bus, {
      decl: decl('malformed'),
      log,
      handlers: [
        [
          diag.ping,
          async (d, _env, ctx) => {
            // Handlers hand keepAlive to timers on its own; it must not need its object.
            const keepAlive = ctx.keepAlive;
            keepAlive();
            seen.push(d.seq);
          },
        ],
      ],
    });
    const deadBefore = await deadCount();
    const subject = bus.subject(diag.ping.subject);
    await bus.js.publish(subject, new TextEncoder().encode('{not json'));
    await bus.js.publish(subject, encodeEnvelope(bus.envelope('diag.ping.v1', { seq: 'one' })));
    await bus.publish(diag.ping, { seq: 42 });
    await until('valid message handled', () => seen.includes(42));
    await until('two dead letters', async () => (await deadCount()) - deadBefore === 2);
    expect(h.stats.deadLettered).toBe(2);
    expect(seen).toEqual([42]);
    await drop(h, 'malformed');
  });

  it('retries a failing handler up to the bound, then dead-letters it with an event', async () => {
    let attempts = 0;
    const events: string[] = [];
    const watcher = bus.nc.subscribe(bus.subject(system.messageDeadLettered.subject), {
      callback: (_e, m) => {
        events.push(new TextDecoder().decode(m.data));
      },
    });
    const h = await consume(bus, {
      decl: decl('flaky', 3),
      log,
      handlers: [
        [
          diag.ping,
          async (d) => {
            if (d.seq === 1) {
              attempts++;
              return retry(10, 'downstream busy');
            }
            return undefined;
          },
        ],
      ],
    });
    await bus.publish(diag.ping, { seq: 1 });
    await until('dead-letter event', () => events.length >= 1);
    expect(attempts).toBe(3);
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!).data.reason).toMatch(/gave up after 3 attempts: downstream busy/);
    watcher.unsubscribe();
    await drop(h, 'flaky');
  });

  it('waits out its backoff before a failed message comes back (whole milliseconds reach nats-server)', async () => {
    const seen: number[] = [];
    const h = await consume(bus, {
      decl: decl('backoff', 3),
      log,
      handlers: [
        [
          diag.ping,
          async (d) => {
            if (d.seq !== 7) return undefined;
            seen.push(Date.now());
            // Thrown, so the consumer's own backoff applies: 200–300 ms, then 400–600 ms.
            if (seen.length < 3) throw new Error('downstream away');
            return undefined;
          },
        ],
      ],
    });
    await bus.publish(diag.ping, { seq: 7 });
    await until('third delivery', () => seen.length >= 3);
    expect(seen[1]! - seen[0]!).toBeGreaterThanOrEqual(190);
    expect(seen[2]! - seen[1]!).toBeGreaterThanOrEqual(390);
    await drop(h, 'backoff');
  });

  it('rejects on request without retrying', async () => {
    let calls = 0;
    const h = await consume(bus, {
      decl: decl('rejecting', 5),
      log,
      handlers: [
        [
          diag.ping,
          async () => {
            calls++;
            return reject('not for us');
          },
        ],
      ],
    });
    const before = await deadCount();
    await bus.publish(diag.ping, { seq: 3 });
    await until('dead letter', async () => (await deadCount()) > before);
    expect(calls).toBe(1);
    await drop(h, 'rejecting');
  });

  it('answers request/reply and carries named errors back', async () => {
    const echo = rpc(
      'inventory',
      'echo-test',
      1,
      z.object({ word: z.string() }),
      z.object({ upper: z.string() }),
      {
        request: { word: 'a' },
        response: { upper: 'A' },
      },
    );
    bus.serve(echo, async (q) => {
      if (q.word === 'missing') throw new NotFoundError('no such word', { field: 'word' });
      return { upper: q.word.toUpperCase() };
    });
    await expect(bus.request(echo, { word: 'hi' })).resolves.toEqual({ upper: 'HI' });
    await expect(bus.request(echo, { word: 'missing' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(bus.request(echo, { word: 3 } as never)).rejects.toThrow(/word/);
  });

  it('pipelines publishes, each resolving with its own ack, and names the failures', async () => {
    const pub = new JsPublisher(bus.nc, undefined, 300);
    try {
      const subject = bus.subject('evt.diag.pipelined.v1');
      const acks = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          pub.publish(subject, encodeEnvelope(bus.envelope('x', i)), `pl-${i % 150}`),
        ),
      );
      expect(new Set(acks.filter((a) => !a.duplicate).map((a) => a.seq)).size).toBe(150);
      expect(acks.filter((a) => a.duplicate)).toHaveLength(50);
      // No stream stores this subject: the server answers "no responders" at once.
      await expect(pub.publish(`${t.prefix}.nowhere`, new Uint8Array(1), 'n-1')).rejects.toThrow(
        /no JetStream stream stores/,
      );
      // A reply that never comes (a plain subscriber swallows the publish) times out.
      const sink = bus.nc.subscribe(`${t.prefix}.sink`);
      await expect(pub.publish(`${t.prefix}.sink`, new Uint8Array(1), 's-1')).rejects.toThrow(
        /no JetStream ack/,
      );
      sink.unsubscribe();
    } finally {
      pub.close();
    }
    await expect(pub.publish(bus.subject('evt.diag.after.v1'), new Uint8Array(1), 'a-1')).rejects.toThrow();
  });
});
