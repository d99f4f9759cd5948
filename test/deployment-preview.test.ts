import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { inventoryRpcs } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * The commit preview (`GET deployments/:id/preview`, DESIGN §6 plan/dry-run) against what the commit
 * then does (reference §1.7 deployment commit, §1.8 deployment-role commit pokes, §2.2 commit! =
 * block_or_todo). A 3-level graph over 10 nodes: some parents ACTIVE beforehand (in `system` and in the
 * deployment), some committed together (so their children go BLOCKED), a destructive role, two OS
 * installs (bootenv changes) and a deployment role whose data changed (its ACTIVE user re-runs).
 */
let t: TestEnv;
let s: Stack;
let bus: Bus;
const names = Array.from({ length: 10 }, (_, i) => `p${i}.lab.crowbar.test`);
const ids: number[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  bus = await connectTestBus(t);
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
const bindIn = (node: number, role: string, data?: unknown) =>
  ok('POST', '/node_roles', { node, role, deployment: 'preview', ...(data ? { data } : {}) });

describe('commit preview', () => {
  it('lists exactly the noderoles the commit sends to TODO, in cohort order (§1.7, §1.8, §2.2)', async () => {
    // Before: parents the preview's graph hangs from, annealed to ACTIVE.
    for (const name of names) ids.push((await ok('POST', '/nodes', { name, alive: true })).id);
    await ok('POST', '/deployments', { name: 'preview' });
    await ok('POST', '/node_roles', { node: ids[0], role: 'test-shared' });
    await bindIn(ids[1]!, 'test-quick');
    await bindIn(ids[7]!, 'test-base');
    await bindIn(ids[8]!, 'test-base');
    for (const id of ids) await ok('PUT', `/nodes/${id}/commit`);
    await ok('PUT', '/deployments/preview/commit');
    await until('anneal finished', async () => (await s.call('GET', '/anneal')).status === 200, 30_000);

    // Nothing runs from here on, so the states the commit leaves can be read as it left them.
    for (const name of ['annealer', 'jig-runner'] as const) {
      await s.services.get(name)?.stop('preview test');
      s.services.delete(name);
    }
    // recall = propose (reference §1.7); the graph is edited while proposed.
    expect((await ok('PUT', '/deployments/preview/recall')).state).toBe('proposed');
    for (const id of ids.slice(1, 7)) await bindIn(id, 'test-top'); // base → middle → top on each
    for (const id of ids.slice(1)) await bindIn(id, 'test-consumer'); // parent: test-shared, ACTIVE on p0
    await bindIn(ids[9]!, 'test-destructive');
    // An install role whose parent is ACTIVE: its TODO changes the node's bootenv (reference §6.5).
    await bus.request(inventoryRpcs.defineRole, {
      name: 'provisioner-os-install',
      barclamp: 'crowbar',
      jig: 'noop',
      requires: ['test-base'],
      flags: ['implicit', 'destructive'],
    });
    await bindIn(ids[8]!, 'provisioner-os-install');
    await bindIn(ids[7]!, 'provisioner-os-install', {
      crowbar: { provisioner: { target_os: 'ubuntu-24.04' } },
    });
    // Changed deployment-role data: its ACTIVE user (test-quick on p1) runs again at commit.
    const drs = (await ok('GET', '/deployments/preview/deployment_roles')).deployment_roles as any[];
    const quick = drs.find((d) => d.role === 'test-quick');
    await ok('PUT', `/deployment_roles/${quick.id}`, { data: { test: { quick: 2 } } });

    const before = (await ok('GET', '/deployments/preview/node_roles')).noderoles as any[];
    const preview = await ok('GET', '/deployments/preview/preview');
    expect(preview.deployment).toMatchObject({ name: 'preview', state: 'proposed' });
    // The preview changed nothing.
    expect((await ok('GET', '/deployments/preview/node_roles')).noderoles).toEqual(before);

    await ok('PUT', '/deployments/preview/commit');
    const after = (await ok('GET', '/deployments/preview/node_roles')).noderoles as any[];
    const wentTodo = after.filter((n) => n.state === 'todo');
    const was = new Map(before.map((n) => [n.id, n.state]));

    expect(preview.noderoles.map((n: any) => n.id).sort()).toEqual(wentTodo.map((n) => n.id).sort());
    for (const n of preview.noderoles) {
      expect(n.from).toBe(was.get(n.id));
      expect(n.to).toBe('todo');
    }
    const cohorts = preview.noderoles.map((n: any) => n.cohort);
    expect(cohorts).toEqual([...cohorts].sort((a, b) => a - b));
    // What went TODO: each node's test-base, test-consumer everywhere, the destructive role, both
    // installs, and the re-run of test-quick; middle and top levels went BLOCKED instead.
    const byRole = (role: string) => preview.noderoles.filter((n: any) => n.role === role);
    expect(byRole('test-base')).toHaveLength(6);
    expect(byRole('test-consumer')).toHaveLength(9);
    expect(byRole('test-middle')).toHaveLength(0);
    expect(byRole('test-top')).toHaveLength(0);
    expect(byRole('test-quick')).toMatchObject([{ nodeId: ids[1], from: 'active' }]);
    expect(after.filter((n) => n.role === 'test-top').every((n) => n.state === 'blocked')).toBe(true);
    expect(
      preview.noderoles
        .filter((n: any) => n.destructive)
        .map((n: any) => n.role)
        .sort(),
    ).toEqual(['provisioner-os-install', 'provisioner-os-install', 'test-destructive']);
    expect(preview.nodes.map((n: any) => n.id).sort()).toEqual(ids.slice(1).sort());
    expect(preview.nodes.find((n: any) => n.id === ids[9])).toEqual({ id: ids[9], name: names[9] });
    expect(preview.bootenvChanges).toEqual(
      expect.arrayContaining([
        { nodeId: ids[8], node: names[8], from: 'sledgehammer', to: 'debian-12-install' },
        { nodeId: ids[7], node: names[7], from: 'sledgehammer', to: 'ubuntu-24.04-install' },
      ]),
    );
    expect(preview.bootenvChanges).toHaveLength(2);
  });

  it('answers 404 naming the deployment for an unknown one', async () => {
    const r = await s.call('GET', '/deployments/nowhere/preview');
    expect(r.status).toBe(404);
    expect(r.body.field).toBe('deployment');
  });
});
