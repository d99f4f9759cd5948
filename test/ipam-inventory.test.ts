import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteNode, findNode, upsertNode } from '../services/network-ipam/db/node-store.js';
import { Bus, streamName } from '../shared/bus/index.js';
import { inventoryRpcs, streams } from '../shared/catalogue/index.js';
import { openDatabase } from '../shared/db/database.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { nodeSummary } from './helpers/fixtures.js';
import { op } from './helpers/inventory.js';
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

const role = (name: string) => op(bus, 'role.get', { role: name }).catch(() => null);

describe('network roles in inventory', () => {
  it('defines network-admin in inventory at bootstrap', async () => {
    await until(
      'admin role defined',
      async () => (await stack.call('GET', '/networks/admin')).body.roleDefined,
    );
    expect(await role('network-admin')).toMatchObject({ name: 'network-admin', jig: 'service' });
  });

  it('allocates on on_proposed when inventory binds network-admin to a node', async () => {
    await op(bus, 'node.create', { name: 'n1.lab.example.com' });
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

  it('gives a node the address its hint names; a hint that is no address is ignored', async () => {
    const name = 'n2.lab.example.com';
    await until('admin role defined', async () => (await role('network-admin')) !== null);
    await op(bus, 'node.create', {
      name,
      hint: { 'admin-v4addr': '198.18.0.200', 'admin-v6addr': 'not-an-address' },
    });
    await bus.request(inventoryRpcs.bindRole, { node: name, role: 'network-admin' });
    const got = await until('hinted addresses allocated', async () => {
      const r = await stack.call('GET', `/nodes/${name}/addresses?network=admin`);
      return r.body.allocations?.length === 2 ? r.body.allocations : null;
    });
    const byRange = Object.fromEntries(got.map((a: any) => [a.range, a.address]));
    expect(byRange.host).toMatch(/^198\.18\.0\.200(\/24)?$/);
    expect(byRange['host-v6']).toMatch(/^f[cd][0-9a-f]{2}:/);

    // A hint set later (node update → node.changed) is used by the next allocation.
    const net = await stack.call('POST', '/networks', {
      name: 'backup',
      conduit: '10g1',
      ranges: [{ name: 'host', first: '198.19.2.10/24', last: '198.19.2.250/24' }],
    });
    expect(net.status).toBe(201);
    // network-ipam's projection holds the new hint once its node consumer has taken an event past
    // everything it had seen before the update (the event leaves inventory's outbox after the commit).
    const nodeEvents = () => bus.jsm.consumers.info(streamName(t.prefix, 'EVENTS'), 'network-ipam-nodes');
    const idle = (i: Awaited<ReturnType<typeof nodeEvents>>) =>
      i.num_pending === 0 && i.num_ack_pending === 0;
    const before = await until('node consumer idle', async () => {
      const i = await nodeEvents();
      return idle(i) ? { seq: i.delivered.stream_seq } : null;
    });
    await op(bus, 'node.update', { node: name, hint: { 'backup-v4addr': '198.19.2.99' } });
    await until('node.changed consumed', async () => {
      const i = await nodeEvents();
      return idle(i) && i.delivered.stream_seq > (before?.seq ?? 0);
    });
    const a = await stack.call('POST', '/network_allocations', { node: name, network: 'backup' });
    expect(a.status).toBe(201);
    expect(JSON.stringify(a.body)).toMatch(/"198\.19\.2\.99/);
  });

  it('keeps the newest node state when node events arrive out of order, and a deleted node deleted', async () => {
    const d = openDatabase(t.databaseUrl, { max: 1 });
    try {
      const n = nodeSummary(9001, 'late.lab.example.com', {
        addressHints: { 'admin-v4addr': '198.18.0.201' },
      });
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
      await upsertNode(d.db, n, at(2));
      await upsertNode(d.db, { ...n, addressHints: {} }, at(1)); // older: changes nothing
      expect((await findNode(d.db, 9001))?.addressHints).toEqual({ 'admin-v4addr': '198.18.0.201' });
      await upsertNode(d.db, { ...n, name: 'renamed.lab.example.com', addressHints: {} }, at(3));
      expect(await findNode(d.db, 9001)).toMatchObject({ name: 'renamed.lab.example.com', addressHints: {} });
      // Deleted: an event that comes afterwards, whatever its time, does not bring the node back.
      await deleteNode(d.db, 9001);
      await upsertNode(d.db, n, at(4));
      expect(await findNode(d.db, 9001)).toBeNull();
    } finally {
      await d.close();
    }
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
