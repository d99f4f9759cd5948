import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bus, decodeEnvelope } from '../shared/bus/bus.js';
import type { Envelope } from '../shared/bus/envelope.js';
import { annealerMessages, wireType } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// The service-provided jig end to end: dns-client's parent dns-service lives on the system phantom node and
// its run is answered by the dns-db service over NATS; its wall is the noderole's wall.
let t: TestEnv;
let s: Stack;
let bus: Bus;
// Every job and result on the bus, as the services send them (a plain subscription beside the streams).
const seen: Envelope[] = [];
beforeAll(async () => {
  t = await createTestEnv();
  bus = await connectTestBus(t);
  for (const def of [annealerMessages.jigRun, annealerMessages.runFinished])
    bus.nc.subscribe(bus.subject(def.subject), {
      callback: (_err, m) => {
        seen.push(decodeEnvelope(m.data));
      },
    });
  await bus.nc.flush();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'dns-db', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_DNS_ADDRESS: '127.0.0.1',
    CROWBAR_DNS_PORT: '0',
    CROWBAR_DNS_SERVERS: '198.18.0.2',
    CROWBAR_DNS_DOMAIN: 'lab.crowbar.test',
  });
});
afterAll(async () => {
  await s?.stop();
  await bus?.close();
  await t?.cleanup();
});

it('a service role is run by its owning service, which returns its wall', async () => {
  const n = await s.call('POST', '/nodes', { name: 'svc.lab.crowbar.test', alive: true });
  // dns-service is a service-flag role: binding puts it on the phantom node, not on this node.
  const svc = await s.call('POST', '/node_roles', { node: n.body.id, role: 'dns-service' });
  expect(svc.body.node).toBe('system-phantom.internal.local');
  await s.call('PUT', `/node_roles/${svc.body.id}/commit`);
  await until(
    'dns-service active',
    async () => (await s.call('GET', `/node_roles/${svc.body.id}`)).body.state === 'active',
    30_000,
  );
  const done = (await s.call('GET', `/node_roles/${svc.body.id}`)).body;
  expect(done.wall.dns).toMatchObject({ servers: ['198.18.0.2'], domain: 'lab.crowbar.test' });
  expect(done.runlog).toContain('dns: servers 198.18.0.2');
});

it("the runner's messages for a job carry the job's lineage: same correlation, caused by the job", async () => {
  const jobs = seen.filter((e) => e.type === wireType(annealerMessages.jigRun));
  expect(jobs.length).toBeGreaterThan(0);
  for (const job of jobs) {
    const { runId } = job.data as { runId: number };
    const finished = seen.filter(
      (e) =>
        e.type === wireType(annealerMessages.runFinished) && (e.data as { runId: number }).runId === runId,
    );
    expect(finished.length, `run ${runId} finished`).toBeGreaterThan(0);
    for (const f of finished) expect([f.correlationId, f.causationId]).toEqual([job.correlationId, job.id]);
  }
});
