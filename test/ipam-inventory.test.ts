import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/index.js';
import { inventoryApi, inventoryRpcs, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/** network-ipam with the real inventory: network roles defined, bound and deleted; on_proposed allocates. */
let t: TestEnv;
let stack: Stack;
let bus: Bus;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'gateway']);
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'ipam-inv-test', log, streams });
});
afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

async function until<T>(what: string, f: () => T | Promise<T>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const role = (name: string) =>
  bus.request(inventoryApi, { op: 'role.get', args: { role: name } }).then(
    (r) => r as { name: string; jig: string },
    () => null,
  );

describe('network roles in inventory', () => {
  it('defines network-admin in inventory at bootstrap', async () => {
    await until(
      'admin role defined',
      async () => (await stack.call('GET', '/networks/admin')).body.roleDefined,
    );
    expect(await role('network-admin')).toMatchObject({ name: 'network-admin', jig: 'service' });
  });

  it('allocates on on_proposed when inventory binds network-admin to a node', async () => {
    await bus.request(inventoryApi, { op: 'node.create', args: { name: 'n1.lab.example.com' } });
    await until(
      'node projected',
      async () => (await stack.call('GET', '/nodes/n1.lab.example.com/addresses')).status === 200,
    );
    await bus.request(inventoryRpcs.bindRole, { node: 'n1.lab.example.com', role: 'network-admin' });
    const got = await until('addresses allocated', async () => {
      const r = await stack.call('GET', '/nodes/n1.lab.example.com/addresses?network=admin');
      return r.body.allocations?.length === 2 ? r.body.allocations : null;
    });
    expect(got.map((a: any) => a.range)).toEqual(['host', 'host-v6']);
  });

  it('binds the network role when the API allocates, and deletes the role with its network', async () => {
    const net = await stack.call('POST', '/networks', {
      name: 'storage',
      conduit: '10g0',
      ranges: [{ name: 'host', first: '198.19.1.10/24', last: '198.19.1.250/24' }],
    });
    expect(net.status).toBe(201);
    await until(
      'storage role defined',
      async () => (await stack.call('GET', '/networks/storage')).body.roleDefined,
    );
    const a = await stack.call('POST', '/network_allocations', {
      node: 'n1.lab.example.com',
      network: 'storage',
    });
    expect(a.status).toBe(201);
    await until('role bound', async () =>
      (await bus.request(inventoryRpcs.getNode, { node: 'n1.lab.example.com' })).roles.includes(
        'network-storage',
      ),
    );

    const scratch = await stack.call('POST', '/networks', { name: 'scratch', conduit: '10g3' });
    expect(scratch.status).toBe(201);
    await until('scratch role defined', async () => (await role('network-scratch')) !== null);
    expect((await stack.call('DELETE', '/networks/scratch')).status).toBe(200);
    await until('scratch role deleted', async () => (await role('network-scratch')) === null);
  });
});
