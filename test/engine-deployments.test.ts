import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { inventoryAnnealRpcs } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// Deployments and deployment roles as the reference describes them (§1.7, §1.8): a phantom node per
// deployment, recall, delete and node-move rules, hooks suppressed while proposed, and deployment-role
// data that re-runs its users when committed. Each test names the rule it checks.
let t: TestEnv;
let s: Stack;
let bus: Bus;
const events: { type: string; id: number; deployment: string }[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  bus = await connectTestBus(t);
  bus.nc.subscribe(bus.subject('evt.noderole.>'), {
    callback: (_e, m) => {
      const env = JSON.parse(new TextDecoder().decode(m.data));
      const nr = env.data.noderole;
      if (nr) events.push({ type: env.type, id: nr.id, deployment: nr.deployment });
    },
  });
});
afterAll(async () => {
  await bus?.close();
  await s?.stop();
  await t?.cleanup();
});

const ok = async (method: string, path: string, body?: unknown) => {
  const r = await s.call(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const settled = () =>
  until('anneal finished', async () => (await s.call('GET', '/anneal')).status === 200, 30_000);
const noderole = (id: number) => ok('GET', `/node_roles/${id}`);

describe('deployments (reference §1.7)', () => {
  it('§1.7: each deployment gets its own phantom node, home of its service roles', async () => {
    const d = await ok('POST', '/deployments', { name: 'svc' });
    const phantom = await ok('GET', '/nodes/svc-phantom.internal.local');
    expect(phantom).toMatchObject({ system: true, alive: true, bootenv: 'local', deploymentId: d.id });
    const n = await ok('POST', '/nodes', { name: 'svc1.lab.crowbar.test', deployment: 'svc' });
    // dns-client needs dns-service, a service role: nowhere up the chain yet, so it is created on the
    // phantom node of the deployment it is bound in.
    await ok('POST', '/node_roles', { node: n.id, role: 'dns-client', deployment: 'svc' });
    const svc = await ok('GET', `/nodes/${n.id}/node_roles/dns-service`).catch(() => null);
    expect(svc).toBeNull();
    const onPhantom = (await ok('GET', `/nodes/${phantom.id}/node_roles`)).noderoles;
    expect(onPhantom.map((x: any) => [x.role, x.deployment])).toEqual([['dns-service', 'svc']]);
  });

  it('§1.7/§3.8: recall proposes a committed deployment: the annealer leaves it alone and its hooks are suppressed', async () => {
    await ok('POST', '/deployments', { name: 'recall' });
    const n = await ok('POST', '/nodes', { name: 'rc1.lab.crowbar.test', alive: true, deployment: 'recall' });
    const base = await ok('POST', '/node_roles', { node: n.id, role: 'test-base' });
    await ok('PUT', `/nodes/${n.id}/commit`);
    await ok('PUT', '/deployments/recall/commit');
    await until('test-base active', async () => (await noderole(base.id)).state === 'active');

    expect((await ok('PUT', '/deployments/recall/recall')).state).toBe('proposed');
    const sys = await s.call('PUT', '/deployments/system/recall');
    expect([sys.status, sys.body.rule]).toEqual([409, 'system deployment']);
    const quick = await ok('POST', '/node_roles', { node: n.id, role: 'test-quick', deployment: 'recall' });
    await ok('PUT', `/node_roles/${quick.id}/commit`);
    expect((await noderole(quick.id)).state).toBe('todo');
    // Not runnable while its deployment is proposed (reference §3.1).
    const { candidates } = await bus.request(inventoryAnnealRpcs.runnable, { limit: 100 });
    expect(candidates.map((c) => c.noderoleId)).not.toContain(quick.id);
    // A later change in a committed deployment emits its hooks; the recalled one's came before and
    // would have arrived first, in stream order.
    const marker = await ok('POST', '/nodes', { name: 'rc-marker.lab.crowbar.test', alive: true });
    const mnr = await ok('POST', '/node_roles', { node: marker.id, role: 'test-shared' });
    await ok('PUT', `/nodes/${marker.id}/commit`);
    await until('marker hook', () => events.some((e) => e.id === mnr.id && e.type === 'noderole.todo.v1'));
    expect(events.filter((e) => e.id === quick.id).map((e) => e.type)).toEqual(['noderole.proposed.v1']);

    await ok('PUT', '/deployments/recall/commit');
    await until('recalled work runs after commit', async () => (await noderole(quick.id)).state === 'active');
  });

  it('§1.7: deleting is refused for system and for a deployment with children; otherwise nodes move to the parent', async () => {
    const sys = await s.call('DELETE', '/deployments/system');
    expect([sys.status, sys.body.rule]).toEqual([409, 'system deployment']);
    await ok('POST', '/deployments', { name: 'outer' });
    await ok('POST', '/deployments', { name: 'inner', parent: 'outer' });
    const busy = await s.call('DELETE', '/deployments/outer');
    expect([busy.status, busy.body.rule]).toEqual([409, 'deployments with children cannot be deleted']);
    expect((await s.call('GET', '/deployments/outer')).status).toBe(200);

    const n = await ok('POST', '/nodes', { name: 'del1.lab.crowbar.test', alive: true, deployment: 'inner' });
    const top = await ok('POST', '/node_roles', { node: n.id, role: 'test-top' });
    expect((await ok('DELETE', '/deployments/inner')).deleted).toBe(true);
    const moved = await ok('GET', `/nodes/${n.id}`);
    expect(moved.deployment).toBe('outer');
    expect((await ok('GET', `/nodes/${n.id}/node_roles`)).noderoles).toEqual([]);
    expect((await s.call('GET', `/node_roles/${top.id}`)).status).toBe(404);
    expect((await s.call('GET', '/nodes/inner-phantom.internal.local')).status).toBe(404);
    expect((await s.call('GET', '/deployments/inner')).status).toBe(404);
  });

  it('§1.7: a node moved to another deployment takes its never-run PROPOSED noderoles along, not the rest', async () => {
    await ok('POST', '/deployments', { name: 'target' });
    const n = await ok('POST', '/nodes', { name: 'mv1.lab.crowbar.test', alive: true });
    const shared = await ok('POST', '/node_roles', { node: n.id, role: 'test-shared' });
    await ok('PUT', `/nodes/${n.id}/commit`);
    await until('test-shared active', async () => (await noderole(shared.id)).state === 'active');
    const top = await ok('POST', '/node_roles', { node: n.id, role: 'test-top' });

    await ok('PUT', `/nodes/${n.id}`, { deployment: 'target' });
    const nrs = (await ok('GET', `/nodes/${n.id}/node_roles`)).noderoles as any[];
    const where = Object.fromEntries(nrs.map((x) => [x.role, x.deployment]));
    expect(where).toEqual({
      'test-shared': 'system',
      'test-base': 'target',
      'test-middle': 'target',
      'test-top': 'target',
    });
    expect((await noderole(top.id)).deployment).toBe('target');
    const drs = (await ok('GET', '/deployments/target/deployment_roles')).deployment_roles as any[];
    expect(drs.map((d) => d.role).sort()).toEqual(['test-base', 'test-middle', 'test-top']);
  });
});

describe('deployment roles (reference §1.8)', () => {
  it('§1.8: changed data is proposed until committed, and committing it re-runs the noderoles that use it', async () => {
    await ok('POST', '/deployments', { name: 'drs' });
    const n = await ok('POST', '/nodes', { name: 'dr1.lab.crowbar.test', alive: true, deployment: 'drs' });
    const quick = await ok('POST', '/node_roles', { node: n.id, role: 'test-quick' });
    await ok('PUT', `/nodes/${n.id}/commit`);
    await ok('PUT', '/deployments/drs/commit');
    await until('test-quick ran once', async () => (await noderole(quick.id)).runCount === 1);
    const dr = ((await ok('GET', '/deployments/drs/deployment_roles')).deployment_roles as any[]).find(
      (d) => d.role === 'test-quick',
    );

    const edited = await ok('PUT', `/deployment_roles/${dr.id}`, { data: { test: { quick: 1 } } });
    expect(edited).toMatchObject({ proposedData: { test: { quick: 1 } }, committedData: {} });
    // Propose: proposed data back to the committed data.
    expect((await ok('PUT', `/deployment_roles/${dr.id}/propose`)).proposedData).toEqual({});
    // Committing unchanged data re-runs nothing.
    await ok('PUT', `/deployment_roles/${dr.id}/commit`);
    expect((await noderole(quick.id)).state).toBe('active');

    await ok('PUT', `/deployment_roles/${dr.id}`, { data: { test: { quick: 2 } } });
    expect((await noderole(quick.id)).state).toBe('active');
    const committed = await ok('PUT', `/deployment_roles/${dr.id}/commit`);
    expect(committed.committedData).toEqual({ test: { quick: 2 } });
    await until('test-quick ran again', async () => (await noderole(quick.id)).runCount === 2, 30_000);
    await settled();
  });
});
