import { execFileSync } from 'node:child_process';
import type { Subscription } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/index.js';
import { inventoryEvents, roleRun, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { nodeSummary } from './helpers/fixtures.js';
import { type Stack, startStack } from './helpers/stack.js';

/** The allocation algorithm over REST (reference §5.5), events, node lifecycle and the network role run. */
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let sub: Subscription;
const events: { type: string; data: any }[] = [];
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

const node = (id: number, name: string, admin = false) => nodeSummary(id, name, { admin });

async function until<T>(what: string, f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function addNode(id: number, name: string, admin = false) {
  await bus.publish(inventoryEvents.nodeCreated, { node: node(id, name, admin) });
  await until(
    `node ${name} projected`,
    async () => (await stack.call('GET', `/nodes/${id}/addresses`)).status === 200,
  );
}

const md5Iid = (fqdn: string) => {
  const hex = execFileSync('sh', ['-c', 'printf %s "$1" | md5sum', 'sh', fqdn], { encoding: 'utf8' }).slice(
    16,
    32,
  );
  return hex
    .match(/.{4}/g)!
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':');
};

let v6prefix: string;
beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['network-ipam', 'gateway']);
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'ipam-alloc-test', log, streams });
  sub = bus.nc.subscribe(`${t.prefix}.evt.>`, {
    callback: (_e, m) => {
      const env = JSON.parse(new TextDecoder().decode(m.data));
      events.push({ type: env.type, data: env.data });
    },
  });
  v6prefix = (await stack.call('GET', '/networks/admin')).body.v6prefix;
  const s = await stack.call('POST', '/networks', {
    name: 'storage',
    group: 'internal',
    conduit: '10g0',
    v6prefix: 'auto',
    ranges: [{ name: 'host', first: '198.19.1.10/24', last: '198.19.1.250/24' }],
    router: { address: '198.19.1.1/24', pref: 50 },
  });
  expect(s.status).toBe(201);
});
afterAll(async () => {
  sub?.unsubscribe();
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

describe('allocation', () => {
  it('auto-allocates host v4 and md5 v6, idempotently, and announces both', async () => {
    await addNode(21, 'n21.cluster.example.com');
    const r = await stack.call('POST', '/network_allocations', {
      node: 'n21.cluster.example.com',
      network: 'admin',
    });
    expect(r.status).toBe(201);
    const [v4, v6] = r.body.allocations;
    expect(v4).toMatchObject({
      range: 'host',
      address: '198.18.0.81/24',
      family: 'ipv4',
      nodeId: 21,
      category: 'admin',
    });
    expect(v6).toMatchObject({ range: 'host-v6', family: 'ipv6' });
    expect(v6.address).toBe(`${v6prefix}:${md5Iid('n21.cluster.example.com')}/64`.replace(/:0:/g, ':0:'));
    const again = await stack.call('POST', '/network_allocations', { node: 21, network: 'admin' });
    expect(again.body.allocations).toEqual(r.body.allocations);
    await until(
      'allocation events',
      () =>
        events.filter((e) => e.type === 'allocation.created.v1' && e.data.allocation.nodeId === 21).length ===
        2,
    );
    const evs = events.filter((e) => e.type === 'allocation.created.v1' && e.data.allocation.nodeId === 21);
    expect(evs.map((e) => e.data.allocation).sort((a, b) => a.id - b.id)).toEqual(r.body.allocations);
  });

  it('gives admin nodes the admin range', async () => {
    await addNode(22, 'admin1.cluster.example.com', true);
    const r = await stack.call('POST', '/network_allocations', { node: 22, network: 'admin' });
    expect(r.body.allocations[0]).toMatchObject({ range: 'admin', address: '198.18.0.10/24' });
  });

  it('honours hinted v4 and v6 addresses', async () => {
    await addNode(23, 'n23.cluster.example.com');
    const a = await stack.call('POST', '/network_allocations', {
      node: 23,
      network: 'admin',
      range: 'host',
      suggestion: '198.18.0.200',
    });
    expect(a.body.allocations).toEqual([expect.objectContaining({ address: '198.18.0.200/24' })]);
    const b = await stack.call('POST', '/networks/admin/allocate_ip', {
      node: 23,
      range: 'host-v6',
      suggestion: `${v6prefix}::beef`,
    });
    expect(b.body.allocations).toEqual([expect.objectContaining({ address: `${v6prefix}::beef/64` })]);
    // A taken suggestion falls back to the lowest free address.
    await addNode(24, 'n24.cluster.example.com');
    const c = await stack.call('POST', '/network_allocations', {
      node: 24,
      network: 'admin',
      range: 'host',
      suggestion: '198.18.0.200',
    });
    expect(c.body.allocations[0].address).toBe('198.18.0.82/24');
    const out = await stack.call('POST', '/network_allocations', {
      node: 24,
      network: 'admin',
      range: 'dhcp',
      suggestion: '198.18.0.200',
    });
    expect([out.status, out.body.field]).toEqual([422, 'suggestion']);
  });

  it('aligns the host part with the admin address of the same group', async () => {
    // n23 holds 198.18.0.200 on admin (group internal); storage is in group internal too.
    const r = await stack.call('POST', '/network_allocations', { node: 23, network: 'storage' });
    expect(r.body.allocations[0].address).toBe('198.19.1.200/24');
    const n21 = await stack.call('POST', '/network_allocations', { node: 21, network: 'storage' });
    expect(n21.body.allocations[0].address).toBe('198.19.1.81/24');
  });

  it('lists addresses by node, network and category', async () => {
    const all = await stack.call('GET', '/nodes/n23.cluster.example.com/addresses');
    expect(all.body.allocations.map((a: any) => a.network)).toEqual(['admin', 'admin', 'storage', 'storage']);
    const adm = await stack.call('GET', '/nodes/23/addresses?category=admin');
    expect(adm.body.allocations).toHaveLength(2);
    const st = await stack.call('GET', '/nodes/23/addresses?network=storage');
    expect(st.body.allocations.every((a: any) => a.network === 'storage')).toBe(true);
    const per = await stack.call('GET', '/networks/admin/allocations?node=n21.cluster.example.com');
    expect(per.body.allocations.map((a: any) => a.address)).toContain('198.18.0.81/24');
    const admins = await stack.call('GET', '/networks/admin/allocations?node=admin');
    expect(admins.body.allocations.map((a: any) => a.node)).toEqual([
      'admin1.cluster.example.com',
      'admin1.cluster.example.com',
    ]);
    expect((await stack.call('GET', '/nodes/999/addresses')).status).toBe(404);
    expect((await stack.call('POST', '/network_allocations', { node: 999, network: 'admin' })).status).toBe(
      404,
    );
    expect((await stack.call('POST', '/network_allocations', { node: 21, network: 'nope' })).status).toBe(
      404,
    );
    expect((await stack.call('POST', '/network_allocations', { node: 21 })).body.field).toBe('network');
  });

  it('looks up networks by address', async () => {
    expect((await stack.call('GET', '/network_lookup?ip=198.18.0.90')).body.name).toBe('admin');
    expect((await stack.call('GET', '/network_lookup?ip=198.19.1.90&category=general')).body.name).toBe(
      'storage',
    );
    expect((await stack.call('GET', '/network_lookup?ip=10.1.2.3')).body.name).toBe('unmanaged');
    expect((await stack.call('GET', '/network_lookup?ip=nope')).status).toBe(422);
  });

  it('releases an address, announces it and hands it out again', async () => {
    const mine = (await stack.call('GET', '/nodes/24/addresses?network=admin')).body.allocations[0];
    const d = await stack.call('DELETE', `/network_allocations/${mine.id}`);
    expect(d.body).toEqual(mine);
    expect((await stack.call('GET', `/network_allocations/${mine.id}`)).status).toBe(404);
    await until('deleted event', () =>
      events.some((e) => e.type === 'allocation.deleted.v1' && e.data.allocation.id === mine.id),
    );
    await addNode(25, 'n25.cluster.example.com');
    const r = await stack.call('POST', '/network_allocations', { node: 25, network: 'admin', range: 'host' });
    expect(r.body.allocations[0].address).toBe(mine.address);
  });

  it('unmanaged: allocates only with a hint', async () => {
    const none = await stack.call('POST', '/network_allocations', { node: 25, network: 'unmanaged' });
    expect(none.body.allocations).toEqual([]);
    const hinted = await stack.call('POST', '/network_allocations', {
      node: 25,
      network: 'unmanaged',
      range: 'host',
      suggestion: '10.9.8.7',
    });
    expect(hinted.body.allocations[0].address).toBe('10.9.8.7/0');
  });

  it('runs the network role: addresses, router and the conduit resolved on the node NICs', async () => {
    const res = await bus.request(roleRun['network-ipam'], {
      runId: 1,
      noderoleId: 1,
      role: 'network-storage',
      nodeId: 21,
      node: 'n21.cluster.example.com',
      data: {
        nics: [
          { name: 'eno1', bus: '0000:01:00.0', speeds: ['1g'] },
          { name: 'ens2f0', bus: '0000:04:00.0', speeds: ['1g', '10g'] },
        ],
      },
    });
    const net = (res.wall as any).crowbar_wall.network;
    expect(Object.keys(net.addresses)).toEqual(expect.arrayContaining(['198.19.1.81/24']));
    expect(net.addresses['198.19.1.81/24']).toMatchObject({
      network: 'storage',
      range: 'host',
      conduit: ['10g0'],
      router: { pref: 50, address: '198.19.1.1/24' },
      resolved_conduit: { nics: ['ens2f0'], interface: 'ens2f0' },
    });
    expect(net.storage.targets).toContain('198.19.1.200/24');
    const bad = bus.request(roleRun['network-ipam'], {
      runId: 2,
      noderoleId: 2,
      role: 'network-storage',
      nodeId: 21,
      node: 'n21.cluster.example.com',
      data: { nics: [{ name: 'eno1', bus: '1', speeds: ['1g'] }] },
    });
    await expect(bad).rejects.toThrow(/conduit 10g0 matches none/);
  });

  it('releases every address of a deleted node', async () => {
    await bus.publish(inventoryEvents.nodeDeleted, { node: node(23, 'n23.cluster.example.com') });
    await until(
      'addresses released',
      async () => (await stack.call('GET', '/network_allocations?node=23')).status === 404,
    );
    await until(
      '4 deleted events',
      () =>
        events.filter((e) => e.type === 'allocation.deleted.v1' && e.data.allocation.nodeId === 23).length ===
        4,
    );
    const left = await stack.call('GET', '/network_allocations?network=storage');
    expect(left.body.allocations.map((a: any) => a.nodeId)).toEqual([21, 21]);
  });
});
