import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// Inventory, network-ipam, annealer and jig-runner together: allocating a node's admin address binds the
// network-admin role (defined by network-ipam in inventory's catalogue), and its run — the service jig,
// answered by network-ipam — hands the node everything needed to configure its interfaces.
let t: TestEnv;
let s: Stack;
beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'network-ipam', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
});
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
});

it('an admin allocation binds network-admin, whose run returns the node network configuration', async () => {
  await until(
    'network-admin role defined',
    async () => (await s.call('GET', '/roles/network-admin')).status === 200,
    30_000,
  );
  const n = await s.call('POST', '/nodes', {
    name: 'd52-54-00-aa-bb-cc.lab.crowbar.test',
    alive: true,
    mac: '52:54:00:aa:bb:cc',
  });
  expect(n.status).toBe(201);
  // network-ipam learns nodes from inventory's events; give it a moment to see this one.
  const alloc = await until(
    'allocation',
    async () => {
      const r = await s.call('POST', '/network_allocations', { node: n.body.name, network: 'admin' });
      return r.status === 201 ? r.body : null;
    },
    20_000,
    200,
  );
  const v4 = alloc.allocations.find((a: any) => a.family === 'ipv4');
  const v6 = alloc.allocations.find((a: any) => a.family === 'ipv6');
  expect(v4.range).toBe('host');
  expect(v4.address).toMatch(/^198\.18\.0\.\d+\/24$/);
  expect(v6.address).toMatch(/^fd[0-9a-f:]+\/64$/);
  const nr = await until('network-admin bound', async () => {
    const r = await s.call('GET', `/nodes/${n.body.id}/node_roles/network-admin`);
    return r.status === 200 ? r.body : null;
  });
  expect(nr.state).toBe('proposed');
  await s.call('PUT', `/nodes/${n.body.id}/commit`);
  await until(
    'network-admin active',
    async () => (await s.call('GET', `/node_roles/${nr.id}`)).body.state === 'active',
    30_000,
  );
  const done = (await s.call('GET', `/node_roles/${nr.id}`)).body;
  expect(JSON.stringify(done.wall)).toContain(v4.address.split('/')[0]);
  expect(JSON.stringify(done.wall)).toContain(v6.address.split('/')[0]);
  const addrs = await s.call('GET', `/nodes/${n.body.id}/addresses?category=admin`);
  expect(addrs.status).toBe(200);
});

it('the admin node created at first start joins the admin network from the admin range', async () => {
  const t2 = await createTestEnv();
  const s2 = await startStack(t2, ['inventory', 'network-ipam', 'gateway'], {
    CROWBAR_ADMIN_NODE: 'admin.lab.crowbar.test',
  });
  try {
    const admin = (await s2.call('GET', '/nodes/admin')).body;
    expect(admin.name).toBe('admin.lab.crowbar.test');
    const addrs = await until('admin address', async () => {
      const r = await s2.call('GET', `/nodes/${admin.id}/addresses?category=admin`);
      return r.status === 200 && JSON.stringify(r.body).includes('198.18.0.') ? r.body : null;
    });
    expect(JSON.stringify(addrs)).toMatch(/198\.18\.0\.1[01]\/24/);
  } finally {
    await s2.stop();
    await t2.cleanup();
  }
});
