import { afterAll, beforeAll, expect, it } from 'vitest';
import { Bus, consume } from '../shared/bus/index.js';
import { watchStranded } from '../shared/bus/stranded.js';
import { annealerMessages, type ConsumerDecl, filterFor, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';

/** A work-queue consumer that will not deliver messages its stream holds (shared/bus/stranded.ts). */
let t: TestEnv;
let bus: Bus;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });
const def = annealerMessages.jigRun;

beforeAll(async () => {
  t = await createTestEnv();
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'stranded-test', log, streams });
});
afterAll(async () => {
  await bus?.close();
  await t?.cleanup();
});

const decl = (durable: string): ConsumerDecl => ({
  stream: 'JIG',
  durable,
  filterSubject: filterFor(def),
  ackWaitMs: 5000,
  maxDeliver: 3,
});
const publishJobs = async (from: number, n: number) => {
  for (let i = from; i < from + n; i++) await bus.publish(def, { ...def.example, runId: i });
};

it('makes a consumer that owes less than its stream holds again, after seeing it twice, and consumes the new one', async () => {
  // The state a real nats-server 2.9 cluster reported (test/faults-nats-cluster.test.ts), as the server
  // would answer it: 4 jobs stored on the filter, nothing pending, the consumer's delivered sequence past
  // the stream's last. A healthy server cannot be brought there through its API (a work-queue consumer
  // must deliver all), so the manager's answers are given here; the next test runs against the real one.
  const calls: string[] = [];
  let exists = true;
  const jsm = {
    consumers: {
      info: async () => {
        calls.push('consumer.info');
        if (!exists) throw new Error('consumer not found');
        return { num_pending: 0, num_ack_pending: 0, delivered: { stream_seq: 72 }, created: 'then' };
      },
      delete: async () => {
        calls.push('consumer.delete');
        exists = false;
        return true;
      },
      add: async () => {
        calls.push('consumer.add');
        exists = true;
        return {};
      },
    },
    streams: {
      info: async (_name: string, opts: { subjects_filter: string }) => {
        calls.push(`stream.info ${opts.subjects_filter}`);
        return { state: { subjects: gone ? {} : { [opts.subjects_filter]: 4 }, last_seq: 52 } };
      },
    },
  };
  let restarted = 0;
  let gone = false;
  const watch = watchStranded({
    jsm: jsm as never,
    prefix: 'x',
    decl: { ...decl('jig-runner'), filterSubject: filterFor(def) },
    everyMs: 20,
    log,
    restart: async () => {
      restarted++;
      // The new consumer delivers: the stream's count drops to what it owes.
      gone = true;
    },
  });
  try {
    await until('made again', () => restarted === 1, 5000, 10);
    expect(watch.stats.remade).toBe(1);
    // Seen twice before anything is done; then deleted, made from the declaration, and consumed again.
    const first = calls.indexOf('consumer.delete');
    expect(calls.slice(0, first).filter((c) => c === 'consumer.info')).toHaveLength(2);
    expect(calls.slice(first, first + 3)).toEqual(['consumer.delete', 'consumer.info', 'consumer.add']);
    expect(calls).toContain(`stream.info x.${filterFor(def)}`);
    // Once the stream holds only what the consumer owes, the watch looks on and does nothing more.
    const checked = calls.filter((c) => c.startsWith('stream.info')).length;
    await until(
      'two more checks',
      () => calls.filter((c) => c.startsWith('stream.info')).length >= checked + 2,
      5000,
      10,
    );
    expect(watch.stats.remade).toBe(1);
    expect(restarted).toBe(1);
  } finally {
    watch.stop();
  }
});

it('leaves a consumer that delivers what is stored alone, while messages come and go', async () => {
  const got: number[] = [];
  const handle = await consume(bus, {
    decl: decl('healthy'),
    log,
    strandedCheckMs: 100,
    handlers: [[def, async (job) => void got.push(job.runId)]],
  });
  try {
    for (let round = 0; round < 5; round++) {
      const checks = handle.stranded.checks;
      await publishJobs(100 + round * 10, 10);
      await until('the round handled', () => got.length === (round + 1) * 10, 15_000, 20);
      await until('two more checks', () => handle.stranded.checks >= checks + 2, 10_000, 20);
    }
    expect(handle.stranded.remade).toBe(0);
    expect(got).toHaveLength(50);
  } finally {
    await handle.stop();
  }
});
