import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/** Networks, ranges and routers over REST, and every validation rule answering 422 with nothing changed. */
let t: TestEnv;
let stack: Stack;

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['network-ipam', 'gateway']);
});
afterAll(async () => {
  await stack?.stop();
  await t?.cleanup();
});

/** Everything an operator can see, to prove a refused request changed nothing. */
async function snapshot() {
  const nets = await stack.call('GET', '/networks');
  const ranges = await stack.call('GET', '/network_ranges');
  const routers = await stack.call('GET', '/network_routers');
  return JSON.stringify([nets.body, ranges.body, routers.body]);
}

const storage = {
  name: 'storage',
  category: 'general',
  group: 'internal',
  conduit: '10g0',
  vlan: 200,
  ranges: [
    { name: 'host', first: '198.19.1.10/24', last: '198.19.1.250/24' },
    { name: 'dhcp', first: '198.19.1.2/24', last: '198.19.1.9/24' },
  ],
  router: { address: '198.19.1.1/24', pref: 50 },
};

describe('networks', () => {
  it('bootstraps admin (v4 + automatic ULA v6) and the unmanaged catch-all', async () => {
    const r = await stack.call('GET', '/networks/admin');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ category: 'admin', group: 'internal', conduit: '1g0', configure: true });
    expect(r.body.ranges.map((x: any) => [x.name, x.first, x.last])).toEqual([
      ['admin', '198.18.0.10/24', '198.18.0.11/24'],
      ['dhcp', '198.18.0.21/24', '198.18.0.80/24'],
      ['host', '198.18.0.81/24', '198.18.0.254/24'],
      ['host-v6', `${r.body.v6prefix}::1/64`, `${r.body.v6prefix}:ffff:ffff:ffff:fffe/64`],
    ]);
    expect(r.body.ranges.find((x: any) => x.name === 'dhcp')).toMatchObject({
      allowAnonLeases: true,
      allowBoundLeases: false,
    });
    expect(r.body.v6prefix).toMatch(
      new RegExp(`^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:${r.body.id.toString(16)}$`),
    );
    expect(r.body.subnets).toEqual(['198.18.0.0/24', `${r.body.v6prefix}::/64`]);
    expect(r.body.routers).toEqual([
      expect.objectContaining({ family: 'ipv4', address: '198.18.0.1/24', pref: 10 }),
    ]);
    const ula = await stack.call('GET', '/network_ula');
    expect(`${r.body.v6prefix}::/64`.startsWith(ula.body.prefix.replace('::/48', ':'))).toBe(true);
    const un = await stack.call('GET', '/networks/unmanaged');
    expect(un.body).toMatchObject({ category: 'unmanaged', configure: false });
  });

  it('creates a network with inline ranges and router, readable by id or name', async () => {
    const r = await stack.call('POST', '/networks', { ...storage, v6prefix: 'auto' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'storage', vlan: 200, useVlan: true, useTeam: false, teamMode: 5 });
    expect(r.body.ranges.map((x: any) => x.name)).toEqual(['host', 'dhcp', 'host-v6']);
    const admin = await stack.call('GET', '/networks/admin');
    // Same installation global ID, different subnet ID.
    const gid = (p: string) => p.split(':').slice(0, 3).join(':');
    expect(gid(r.body.v6prefix)).toBe(gid(admin.body.v6prefix));
    expect(r.body.v6prefix.split(':')[3]).toBe(r.body.id.toString(16));
    expect((await stack.call('GET', `/networks/${r.body.id}`)).body.name).toBe('storage');
    expect(
      (await stack.call('GET', '/networks?category=general')).body.networks.map((n: any) => n.name),
    ).toEqual(['storage']);
    expect((await stack.call('POST', '/networks', storage)).status).toBe(409);
  });

  const bad: [string, Record<string, unknown>, string][] = [
    [
      'first/last in different subnets',
      { ranges: [{ name: 'host', first: '198.19.2.10/24', last: '198.19.3.10/24' }] },
      'ranges.0.last',
    ],
    [
      'first/last in different families',
      { ranges: [{ name: 'host', first: '198.19.2.10/24', last: 'fd00::10/64' }] },
      'ranges.0.last',
    ],
    [
      'range starting at the network address',
      { ranges: [{ name: 'host', first: '198.19.2.0/24', last: '198.19.2.10/24' }] },
      'ranges.0.first',
    ],
    [
      'range ending at the broadcast address',
      { ranges: [{ name: 'host', first: '198.19.2.10/24', last: '198.19.2.255/24' }] },
      'ranges.0.last',
    ],
    [
      'overlapping ranges without overlap',
      {
        ranges: [
          { name: 'host', first: '198.19.2.10/24', last: '198.19.2.100/24' },
          { name: 'dhcp', first: '198.19.2.50/24', last: '198.19.2.60/24' },
        ],
      },
      'ranges.1.first',
    ],
    [
      'range overlapping another network',
      { ranges: [{ name: 'host', first: '198.18.0.100/24', last: '198.18.0.120/24' }] },
      'ranges.0.first',
    ],
    [
      'overlap on a configured network',
      { ranges: [{ name: 'host', first: '198.19.2.10/24', last: '198.19.2.20/24', overlap: true }] },
      'ranges.0.overlap',
    ],
    ['conduit with mixed speeds', { conduit: '10g2,1g3', useTeam: true }, 'conduit'],
    ['team without useTeam', { conduit: '10g2,10g3' }, 'useTeam'],
    ['conduit sharing half of another', { conduit: '1g0,1g1', useTeam: true }, 'conduit'],
    ['malformed conduit', { conduit: 'eth0' }, 'conduit'],
    ['vlan 0', { vlan: 0 }, 'vlan'],
    ['vlan 4095', { vlan: 4095 }, 'vlan'],
    ['teamMode 9', { teamMode: 9, conduit: '10g2,10g3' }, 'teamMode'],
    ['malformed v6prefix', { v6prefix: 'fd00::/64' }, 'v6prefix'],
    ['v6prefix with five hextets', { v6prefix: 'fd00:1:2:3:4' }, 'v6prefix'],
    ['bad name', { name: 'Bad Name' }, 'name'],
    ['unknown category', { category: 'storage' }, 'category'],
  ];
  it.each(bad)('refuses %s with 422 naming the field, changing nothing', async (_what, patch, field) => {
    const before = await snapshot();
    const r = await stack.call('POST', '/networks', { name: 'bad', conduit: '10g5', ...patch });
    expect(r.status).toBe(422);
    expect(r.body.field).toBe(field);
    expect(r.body.message).toBeTruthy();
    expect(await snapshot()).toBe(before);
  });

  it('refuses a body that is not JSON, and deleting the admin network', async () => {
    const before = await snapshot();
    const r = await stack.call('POST', '/networks', '{not json');
    expect([r.status, r.body.field]).toEqual([422, 'body']);
    const d = await stack.call('DELETE', '/networks/admin');
    expect([d.status, d.body.field]).toEqual([422, 'network']);
    const c = await stack.call('PUT', '/networks/admin', { conduit: '1g1' });
    expect([c.status, c.body.field]).toEqual([422, 'conduit']);
    const u = await stack.call('PUT', '/networks/storage', { vlan: 4095 });
    expect([u.status, u.body.field]).toEqual([422, 'vlan']);
    expect(await snapshot()).toBe(before);
  });

  it('updates a network and deletes it', async () => {
    const r = await stack.call('POST', '/networks', {
      name: 'scratch',
      conduit: '10g7',
      ranges: [{ name: 'host', first: '198.19.9.10/24', last: '198.19.9.20/24' }],
    });
    expect(r.status).toBe(201);
    const u = await stack.call('PUT', '/networks/scratch', {
      description: 'temp',
      vlan: 33,
      v6prefix: 'fd00:1:2:3',
    });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ description: 'temp', vlan: 33, useVlan: true, v6prefix: 'fd00:1:2:3' });
    expect(u.body.ranges.find((x: any) => x.name === 'host-v6').first).toBe('fd00:1:2:3::1/64');
    expect((await stack.call('DELETE', '/networks/scratch')).status).toBe(200);
    expect((await stack.call('GET', '/networks/scratch')).status).toBe(404);
  });
});

describe('ranges and routers', () => {
  it('adds, reads, changes and removes a range', async () => {
    const add = await stack.call('POST', '/network_ranges', {
      network: 'storage',
      name: 'switch',
      first: '198.19.1.251/24',
      last: '198.19.1.253/24',
    });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({ network: 'storage', name: 'switch', family: 'ipv4' });
    expect((await stack.call('GET', `/network_ranges/${add.body.id}`)).body.name).toBe('switch');
    expect((await stack.call('GET', '/network_ranges/switch?network=storage')).body.id).toBe(add.body.id);
    const before = await snapshot();
    const overlap = await stack.call('POST', '/network_ranges', {
      network: 'storage',
      name: 'extra',
      first: '198.19.1.240/24',
      last: '198.19.1.245/24',
    });
    expect([overlap.status, overlap.body.field]).toEqual([422, 'range.first']);
    const badLast = await stack.call('PUT', `/network_ranges/${add.body.id}`, { last: '198.19.1.255/24' });
    expect([badLast.status, badLast.body.field]).toEqual([422, 'last']);
    expect(await snapshot()).toBe(before);
    const ch = await stack.call('PUT', `/network_ranges/${add.body.id}`, { last: '198.19.1.252/24' });
    expect([ch.status, ch.body.last]).toEqual([200, '198.19.1.252/24']);
    expect((await stack.call('DELETE', `/network_ranges/${add.body.id}`)).status).toBe(200);
    expect((await stack.call('GET', `/network_ranges/${add.body.id}`)).status).toBe(404);
  });

  it('keeps one router per family, changes its pref, removes it', async () => {
    const dup = await stack.call('POST', '/network_routers', {
      network: 'storage',
      address: '198.19.1.2/24',
    });
    expect(dup.status).toBe(409);
    const v6 = await stack.call('POST', '/network_routers', { network: 'storage', family: 'ipv6', pref: 70 });
    expect(v6.status).toBe(201);
    expect(v6.body.address).toMatch(/::1\/64$/);
    const out = await stack.call('POST', '/network_routers', { network: 'admin', address: '198.19.1.1/24' });
    expect([out.status, out.body.field]).toEqual([422, 'router.address']);
    const p = await stack.call('PUT', `/network_routers/${v6.body.id}`, { pref: 5 });
    expect(p.body.pref).toBe(5);
    expect((await stack.call('GET', '/network_routers?network=storage')).body.routers).toHaveLength(2);
    expect((await stack.call('DELETE', `/network_routers/${v6.body.id}`)).status).toBe(200);
    expect((await stack.call('GET', '/network_routers?network=storage')).body.routers).toHaveLength(1);
  });
});
