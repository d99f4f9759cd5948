import { describe, expect, it } from 'vitest';
import type { AllocationSummary, NetworkDetail, NodeSummary } from '../../../shared/catalogue/index.js';
import { lagging } from './converge.js';
import { ipToInt } from './ipv4.js';
import { buildView, networkHolding, normaliseMac } from './view.js';

const node = (id: number, over: Partial<NodeSummary> = {}): NodeSummary => ({
  id,
  name: `n${id}.crowbar.test`,
  admin: false,
  system: false,
  alive: true,
  available: true,
  bootenv: 'sledgehammer',
  deploymentId: 1,
  deployment: 'system',
  macs: [`52:54:00:00:00:0${id}`],
  roles: [],
  sshHostKey: null,
  addressHints: {},
  ...over,
});
const alloc = (
  id: number,
  nodeId: number,
  address: string,
  over: Partial<AllocationSummary> = {},
): AllocationSummary => ({
  id,
  nodeId,
  node: `n${nodeId}.crowbar.test`,
  networkId: 1,
  network: 'admin',
  category: 'admin',
  range: 'host',
  address,
  family: 'ipv4',
  ...over,
});
const range = (id: number, name: string, first: string, last: string, anon: boolean) => ({
  id,
  networkId: 1,
  network: 'admin',
  name,
  family: 'ipv4' as const,
  first,
  last,
  overlap: false,
  conduit: null,
  vlan: null,
  useVlan: null,
  useBridge: null,
  teamMode: null,
  useTeam: null,
  allowAnonLeases: anon,
  allowBoundLeases: !anon,
  anonLeaseTime: 60,
  boundLeaseTime: 3600,
});
const admin: NetworkDetail = {
  id: 1,
  name: 'admin',
  category: 'admin',
  group: 'internal',
  deploymentId: 1,
  v6prefix: null,
  subnets: ['198.18.0.0/24', 'fd00::/64'],
  description: '',
  conduit: '1g0',
  vlan: 0,
  useVlan: false,
  teamMode: 5,
  useTeam: false,
  useBridge: false,
  configure: true,
  pbr: null,
  order: 1000,
  roleDefined: true,
  ranges: [
    range(1, 'dhcp', '198.18.0.21/24', '198.18.0.80/24', true),
    range(2, 'host', '198.18.0.81/24', '198.18.0.254/24', false),
  ],
  routers: [
    { id: 2, networkId: 1, network: 'admin', family: 'ipv4', address: '198.18.0.3/24', pref: 20 },
    { id: 1, networkId: 1, network: 'admin', family: 'ipv4', address: '198.18.0.1/24', pref: 10 },
  ],
};
const unmanaged: NetworkDetail = {
  ...admin,
  id: 2,
  name: 'unmanaged',
  category: 'unmanaged',
  subnets: ['0.0.0.0/0'],
};

describe('served view', () => {
  const view = buildView({
    nodes: [
      node(1, { macs: ['52:54:00:AA:BB:01', '52-54-00-aa-bb-02'] }),
      node(2, { admin: true }),
      node(3, { system: true }),
      node(4, { macs: ['not-a-mac'] }),
    ],
    allocations: [
      alloc(1, 1, '198.18.0.81/24'),
      alloc(2, 1, 'fd00::81/64', { family: 'ipv6' }),
      alloc(3, 2, '198.18.0.10/24', { range: 'admin' }),
    ],
    networks: [admin, unmanaged],
  });

  it('keys reservations by normalised MAC, all MACs of a node sharing its addresses', () => {
    expect([...view.byMac.keys()].sort()).toEqual(['52:54:00:aa:bb:01', '52:54:00:aa:bb:02']);
    const r = view.byMac.get('52:54:00:aa:bb:02')!;
    expect(r).toMatchObject({ nodeId: 1, hostname: 'n1', bootenv: 'sledgehammer' });
    expect(r.addresses.get(1)).toEqual({ address: ipToInt('198.18.0.81'), range: 'host' });
  });

  it('leaves out the admin node, phantom nodes, IPv6 and unmanaged networks; routers best first', () => {
    expect(view.networks.map((n) => n.name)).toEqual(['admin']);
    expect(view.reserved.has(ipToInt('198.18.0.10')!)).toBe(false);
    expect(view.networks[0]!.routers).toEqual([ipToInt('198.18.0.1'), ipToInt('198.18.0.3')]);
    expect(networkHolding(view, ipToInt('198.18.0.99')!)?.name).toBe('admin');
    expect(networkHolding(view, ipToInt('198.18.1.1')!)).toBeUndefined();
  });

  it.each([
    ['52:54:00:AB:CD:EF', '52:54:00:ab:cd:ef'],
    ['52-54-00-ab-cd-ef', '52:54:00:ab:cd:ef'],
    ['52:54:00:ab:cd', null],
    ['zz:54:00:ab:cd:ef', null],
  ])('normaliseMac(%s) = %s', (input, out) => expect(normaliseMac(input)).toBe(out));
});

describe('lagging (what a dhcp-database run waits for)', () => {
  const view = buildView({
    nodes: [node(1)],
    allocations: [alloc(1, 1, '198.18.0.81/24')],
    networks: [admin],
  });
  const addresses = new Map([[1, new Map([[1, '198.18.0.81']])]]);

  it('is empty when bootenv, MACs and addresses match', () => {
    expect(lagging(view, { nodes: [node(1)], addresses }, null)).toEqual([]);
  });
  it('names a bootenv the reservation does not show yet', () => {
    expect(lagging(view, { nodes: [node(1, { bootenv: 'debian-12-install' })], addresses }, 1)).toEqual([
      'n1.crowbar.test: bootenv sledgehammer served, debian-12-install wanted',
    ]);
  });
  it('names a moved address and a MAC with no reservation, and keeps to the run node when asked', () => {
    const moved = new Map([[1, new Map([[1, '198.18.0.90']])]]);
    const truth = { nodes: [node(1), node(5)], addresses: moved };
    expect(lagging(view, truth, null)).toEqual([
      'n1.crowbar.test: address 198.18.0.81 served, 198.18.0.90 wanted',
      'n5.crowbar.test: no reservation for 52:54:00:00:00:05 yet',
    ]);
    expect(lagging(view, truth, 5)).toEqual(['n5.crowbar.test: no reservation for 52:54:00:00:00:05 yet']);
  });
});
