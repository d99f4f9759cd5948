import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bus, decodeEnvelope } from '../shared/bus/bus.js';
import type { Envelope } from '../shared/bus/envelope.js';
import { annealerMessages, type JigJob, system } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * A jig job the runners gave up on is dead-lettered, and its announcement is all the annealer hears of
 * it: no result ever comes. The run must fail at once with the runners' reason (ERROR with a run log
 * saying why), not hold a slot of the cap until the role's deadline. No jig runner runs here, so the
 * job stays in JIG; the test announces what a runner announces when it gives up.
 */
let t: TestEnv;
let s: Stack;
let bus: Bus;
const jobs: Envelope<JigJob>[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  bus = await connectTestBus(t);
  bus.nc.subscribe(bus.subject(annealerMessages.jigRun.subject), {
    callback: (_err, m) => {
      jobs.push(decodeEnvelope(m.data) as Envelope<JigJob>);
    },
  });
  await bus.nc.flush();
  s = await startStack(t, ['inventory', 'annealer', 'gateway'], { CROWBAR_ANNEAL_PASS_MS: '100' });
});
afterAll(async () => {
  await s?.stop();
  await bus?.close();
  await t?.cleanup();
});

async function dispatched(name: string) {
  const n = await s.call('POST', '/nodes', { name, alive: true });
  const nr = await s.call('POST', '/node_roles', { node: n.body.id, role: 'test-base' });
  expect((await s.call('PUT', `/nodes/${n.body.id}/commit`)).status).toBe(200);
  const job = await until(
    `the job of ${name}`,
    async () => jobs.find((j) => j.data.noderoleId === nr.body.id) ?? null,
    30_000,
  );
  if (!job) throw new Error(`no job for ${name}`);
  return { noderole: nr.body.id as number, job };
}

const deadLettered = (job: Envelope<JigJob>, stream: string, reason: string) =>
  bus.publish(system.messageDeadLettered, {
    stream,
    consumer: 'jig-runner',
    subject: bus.subject(annealerMessages.jigRun.subject),
    deliveries: 3,
    reason,
    messageId: job.id,
  });

const noderole = async (id: number) => (await s.call('GET', `/node_roles/${id}`)).body;

it('fails the run of a dead-lettered jig job at once, with the reason the runners gave', async () => {
  const { noderole: id, job } = await dispatched('given-up.crowbar.test');
  expect(job.id).toBe(`jig:${job.data.runId}`);
  expect((await noderole(id)).state).toBe('transition');
  await deadLettered(job, 'JIG', 'gave up after 3 attempts: no JetStream ack within 5000 ms');
  const failed = await until(
    'the noderole in ERROR',
    async () => {
      const nr = await noderole(id);
      return nr.state === 'error' ? nr : null;
    },
    20_000,
  );
  expect(failed.runlog).toContain(`the jig runners gave up on run ${job.data.runId}`);
  expect(failed.runlog).toContain('no JetStream ack within 5000 ms');
  const runs = (await s.call('GET', '/runs?all=true')).body;
  const run = runs.runs.find((r: { id: number }) => r.id === job.data.runId);
  expect(run?.state).toBe('failed');
});

it("leaves a running job alone when what was dead-lettered is another stream's message or not a job", async () => {
  const { noderole: id, job } = await dispatched('still-running.crowbar.test');
  await deadLettered(job, 'EVENTS', 'an event consumer gave up');
  await deadLettered({ ...job, id: 'finished:1:x' }, 'JIG', 'not a job id');
  // A marker behind them on the same consumer: once it has been handled, so have they.
  const { noderole: marker, job: markerJob } = await dispatched('marker.crowbar.test');
  await deadLettered(markerJob, 'JIG', 'marker');
  await until('the marker in ERROR', async () => (await noderole(marker)).state === 'error', 20_000);
  expect((await noderole(id)).state).toBe('transition');
  const active = (await s.call('GET', '/runs')).body;
  expect(active.runs.map((r: { id: number }) => r.id)).toContain(job.data.runId);
});
