import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { streamName } from '../shared/bus/streams.js';
import {
  activeCount as annealActive,
  annealUnderWay,
  expectSurvived,
  startAnnealStack,
  writeLoop,
} from './helpers/anneal-load.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type NatsCluster, startNatsCluster } from './helpers/nats-cluster.js';
import type { Stack } from './helpers/stack.js';

/**
 * Beyond one machine (issue 18, plan T14): the services on a three-node NATS cluster with their streams
 * at three replicas (CROWBAR_STREAM_REPLICAS=3). During an anneal of 220 noderoles the node the services
 * were pointed at is killed with -9, and once it is back another one: the services fail over by
 * themselves, every noderole ends ACTIVE or ERROR with a reason, no destructive role runs twice and no
 * write answered 2xx is lost.
 */
const hosts = ['127.0.19.1', '127.0.19.2', '127.0.19.3'];
let t: TestEnv;
let s: Stack;
let dir: string;
let cluster: NatsCluster;

const activeCount = () => annealActive(s, 'cluster');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-natscluster-'));
  cluster = await startNatsCluster(dir, hosts, 4251);
  t = await createTestEnv();
  s = await startAnnealStack(t, {
    // One seed is enough: the clients learn the other nodes from the cluster.
    NATS_URL: cluster.urls[0]!,
    CROWBAR_STREAM_REPLICAS: '3',
  });
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await cluster?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The streams' and their consumers' state as the cluster sees it (from the node never killed). */
async function jetStreamState() {
  const nc = await connect({ servers: cluster.urls[2]!, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    const out: Record<string, unknown> = {};
    for (const name of ['JIG', 'ANNEALER', 'EVENTS']) {
      const stream = streamName(t.prefix, name);
      const info = await jsm.streams.info(stream);
      const consumers = [];
      for await (const c of jsm.consumers.list(stream))
        consumers.push({
          name: c.name,
          leader: c.cluster?.leader,
          pending: c.num_pending,
          ackPending: c.num_ack_pending,
          redelivered: c.num_redelivered,
          waiting: c.num_waiting,
          delivered: c.delivered.stream_seq,
          ackFloor: c.ack_floor.stream_seq,
        });
      out[name] = {
        messages: info.state.messages,
        last: info.state.last_seq,
        leader: info.cluster?.leader,
        replicas: info.cluster?.replicas?.map((r) => ({ name: r.name, current: r.current, lag: r.lag })),
        consumers,
      };
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** What a stalled anneal looks like: each service's detail (its NATS link among it), JetStream's state. */
async function stalled(): Promise<string> {
  const services = Object.fromEntries([...s.services].map(([name, h]) => [name, h.detail()]));
  const js = await jetStreamState().catch((e: Error) => ({ error: e.message }));
  return JSON.stringify({ active: await activeCount(), services, jetStream: js });
}

it('fails over when NATS nodes are killed with -9 one after the other', { timeout: 420_000 }, async () => {
  const nc = await connect({ servers: cluster.urls[1]!, timeout: 3000 });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(streamName(t.prefix, 'JIG'));
    expect(info.config.num_replicas).toBe(3);
  } finally {
    await nc.close();
  }
  const { total } = await annealUnderWay(s, 'cluster');
  const writes = writeLoop(s, 'cluster');
  const atFirst = await activeCount();
  await cluster.kill(0);
  // Work goes on through the other two while the first is away.
  await until(
    'anneal going on without nats-1',
    async () => (await activeCount()) >= atFirst + 20,
    120_000,
    100,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message} (${atFirst} ACTIVE at the kill): ${await stalled()}`);
  });
  await cluster.start(0);
  await cluster.ready(0);
  const atSecond = await activeCount();
  // The second kill must land while there is still work to do.
  expect(atSecond).toBeLessThan(total);
  await cluster.kill(1);
  // Down while the anneal goes on through the other two (or for 30 s on a slow machine), then back.
  await until(
    'anneal going on without nats-2',
    async () => (await activeCount()) >= Math.min(total, atSecond + 10),
    30_000,
    100,
  ).catch(() => undefined);
  await cluster.start(1);
  await expectSurvived({
    s,
    databaseUrl: t.databaseUrl,
    deployment: 'cluster',
    total,
    writes,
    fault: 'NATS cluster: two nodes kill -9 in turn',
    acked: true,
    settleMs: 240_000,
    diagnose: jetStreamState,
  });
});
