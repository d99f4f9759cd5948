import { z } from 'zod';
import { event, recordRef, rpc, type StreamDecl } from './define.js';

/**
 * Messages owned by network-ipam. Consumers: dns-db and dhcp-db (allocations, networks), inventory
 * (network roles), aliveness-probe (a node's admin addresses).
 */
export const family = z.enum(['ipv4', 'ipv6']);
export const networkCategory = z.enum(['admin', 'bmc', 'general', 'unmanaged']);

export const networkSummary = z.object({
  id: z.number().int().positive(),
  name: z.string(),
  category: networkCategory,
  group: z.string(),
  deploymentId: z.number().int().positive(),
  v6prefix: z.string().nullable(),
  /** CIDR of each family's subnet, e.g. 198.18.0.0/24 and fd12:3456:789a:1::/64. */
  subnets: z.array(z.string()),
});

export const allocationSummary = z.object({
  id: z.number().int().positive(),
  nodeId: z.number().int().positive(),
  node: z.string(),
  networkId: z.number().int().positive(),
  network: z.string(),
  category: networkCategory,
  range: z.string(),
  /** Address with prefix length, e.g. 198.18.0.81/24. */
  address: z.string(),
  family,
});
export type AllocationSummary = z.infer<typeof allocationSummary>;

const networkExample = {
  id: 1,
  name: 'admin',
  category: 'admin' as const,
  group: 'internal',
  deploymentId: 1,
  v6prefix: 'fd12:3456:789a:1',
  subnets: ['198.18.0.0/24', 'fd12:3456:789a:1::/64'],
};
const allocationExample = {
  id: 5,
  nodeId: 2,
  node: 'd52-54-00-12-34-56.cluster.example.com',
  networkId: 1,
  network: 'admin',
  category: 'admin' as const,
  range: 'host',
  address: '198.18.0.81/24',
  family: 'ipv4' as const,
};

export const ipamMessages = {
  networkCreated: event('network.created', 1, z.object({ network: networkSummary }), {
    network: networkExample,
  }),
  networkChanged: event('network.changed', 1, z.object({ network: networkSummary }), {
    network: networkExample,
  }),
  networkDeleted: event('network.deleted', 1, z.object({ network: networkSummary }), {
    network: networkExample,
  }),
  allocationCreated: event('allocation.created', 1, z.object({ allocation: allocationSummary }), {
    allocation: allocationExample,
  }),
  allocationDeleted: event('allocation.deleted', 1, z.object({ allocation: allocationSummary }), {
    allocation: allocationExample,
  }),
  /** A node's addresses, optionally limited to a category or network (aliveness, jig-runner, dns-db resync). */
  nodeAddresses: rpc(
    'network-ipam',
    'node.addresses',
    1,
    z.object({
      nodeId: z.number().int().positive(),
      category: networkCategory.optional(),
      network: z.string().optional(),
    }),
    z.object({ allocations: z.array(allocationSummary) }),
    { request: { nodeId: 2, category: 'admin' }, response: { allocations: [allocationExample] } },
  ),
  /** Every allocation, for projections that re-sync from the owner's state. */
  listAllocations: rpc(
    'network-ipam',
    'allocation.list',
    1,
    z.object({
      afterId: z.number().int().nonnegative().default(0),
      limit: z.number().int().positive().max(5000).default(1000),
    }),
    z.object({ allocations: z.array(allocationSummary) }),
    { request: { afterId: 0, limit: 1000 }, response: { allocations: [allocationExample] } },
  ),
};

/* ---- Operator-facing RPCs (the gateway's REST resources map onto these one to one). ---- */

const id = z.number().int().positive();
/** A network, range or node named by id or by name. */
export const ipamRef = recordRef();
const objName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]{0,40}$/,
    'must be lower-case letters, digits, - or _ (max 41), starting with a letter',
  );

export const rangeInput = z.object({
  name: objName,
  /** First and last address in CIDR form, e.g. 198.18.0.81/24. */
  first: z.string().min(1).max(64),
  last: z.string().min(1).max(64),
  overlap: z.boolean().default(false),
  /** Per-range overrides; null inherits the network's value. */
  conduit: z.string().max(200).nullable().default(null),
  vlan: z.number().int().nullable().default(null),
  useVlan: z.boolean().nullable().default(null),
  useBridge: z.boolean().nullable().default(null),
  teamMode: z.number().int().nullable().default(null),
  useTeam: z.boolean().nullable().default(null),
  /** DHCP flags; defaults follow the range name (`dhcp` anonymous, others bound). */
  allowAnonLeases: z.boolean().optional(),
  allowBoundLeases: z.boolean().optional(),
  anonLeaseTime: z.number().int().optional(),
  boundLeaseTime: z.number().int().optional(),
});
export type RangeInput = z.infer<typeof rangeInput>;
export const rangeChanges = rangeInput.omit({ name: true }).partial();

export const routerInput = z.object({
  /** CIDR; omitted means the first address of the network's first range of that family. */
  address: z.string().min(1).max(64).optional(),
  /** Lower wins the default route. */
  pref: z.number().int().min(0).max(2_147_483_647).default(65536),
  family: family.optional(),
});
export type RouterInput = z.infer<typeof routerInput>;

const networkConfig = {
  description: z.string().max(1000).default(''),
  deploymentId: id.default(1),
  category: networkCategory.default('general'),
  group: objName.default('default'),
  conduit: z.string().min(1).max(200),
  vlan: z.number().int().optional(),
  useVlan: z.boolean().optional(),
  teamMode: z.number().int().optional(),
  useTeam: z.boolean().optional(),
  useBridge: z.boolean().default(false),
  configure: z.boolean().default(true),
  pbr: z.string().max(64).nullable().default(null),
  /** `auto`, four hextets (a /64), or null for no IPv6. */
  v6prefix: z.string().max(64).nullable().default(null),
  order: z.number().int().min(0).max(1_000_000).default(1000),
};
export const networkInput = z.object({
  name: objName,
  ...networkConfig,
  ranges: z.array(rangeInput).max(64).default([]),
  router: routerInput.optional(),
});
export type NetworkInput = z.infer<typeof networkInput>;
/** Everything but the name may change; omitted fields keep their value. */
export const networkChanges = z.object(networkConfig).partial().strict();
export type NetworkChanges = z.infer<typeof networkChanges>;

export const rangeDetail = z.object({
  id,
  networkId: id,
  network: z.string(),
  name: z.string(),
  family,
  first: z.string(),
  last: z.string(),
  overlap: z.boolean(),
  conduit: z.string().nullable(),
  vlan: z.number().int().nullable(),
  useVlan: z.boolean().nullable(),
  useBridge: z.boolean().nullable(),
  teamMode: z.number().int().nullable(),
  useTeam: z.boolean().nullable(),
  allowAnonLeases: z.boolean(),
  allowBoundLeases: z.boolean(),
  anonLeaseTime: z.number().int(),
  boundLeaseTime: z.number().int(),
});
export type RangeDetail = z.infer<typeof rangeDetail>;
export const routerDetail = z.object({
  id,
  networkId: id,
  network: z.string(),
  family,
  address: z.string(),
  pref: z.number().int(),
});
export type RouterDetail = z.infer<typeof routerDetail>;
export const networkDetail = networkSummary.extend({
  description: z.string(),
  conduit: z.string(),
  vlan: z.number().int(),
  useVlan: z.boolean(),
  teamMode: z.number().int(),
  useTeam: z.boolean(),
  useBridge: z.boolean(),
  configure: z.boolean(),
  pbr: z.string().nullable(),
  order: z.number().int(),
  /** Whether inventory has acknowledged the `network-<name>` role yet. */
  roleDefined: z.boolean(),
  ranges: z.array(rangeDetail),
  routers: z.array(routerDetail),
});
export type NetworkDetail = z.infer<typeof networkDetail>;

const rangeExample = {
  id: 3,
  networkId: 1,
  network: 'admin',
  name: 'host',
  family: 'ipv4' as const,
  first: '198.18.0.81/24',
  last: '198.18.0.254/24',
  overlap: false,
  conduit: null,
  vlan: null,
  useVlan: null,
  useBridge: null,
  teamMode: null,
  useTeam: null,
  allowAnonLeases: false,
  allowBoundLeases: true,
  anonLeaseTime: 60,
  boundLeaseTime: 2_592_000,
};
const routerExample = {
  id: 1,
  networkId: 1,
  network: 'admin',
  family: 'ipv4' as const,
  address: '198.18.0.1/24',
  pref: 10,
};
const detailExample = {
  ...networkExample,
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
  ranges: [rangeExample],
  routers: [routerExample],
};
const createExample = {
  name: 'storage',
  conduit: '10g0',
  ranges: [{ name: 'host', first: '198.19.0.10/24', last: '198.19.0.250/24' }],
  router: { address: '198.19.0.1/24', pref: 50 },
};
const netRef = z.object({ network: ipamRef });
/** A range by id, or by name together with its network. */
const rangeRef = z.object({ range: ipamRef, network: ipamRef.optional() });

export const ipamRpcs = {
  networkCreate: rpc('network-ipam', 'network.create', 1, networkInput, networkDetail, {
    request: createExample,
    response: detailExample,
  }),
  networkGet: rpc('network-ipam', 'network.get', 1, netRef, networkDetail, {
    request: { network: 'admin' },
    response: detailExample,
  }),
  networkList: rpc(
    'network-ipam',
    'network.list',
    1,
    z.object({ category: networkCategory.optional(), deploymentId: id.optional() }),
    z.object({ networks: z.array(networkDetail) }),
    { request: {}, response: { networks: [detailExample] } },
  ),
  networkUpdate: rpc(
    'network-ipam',
    'network.update',
    1,
    z.object({ network: ipamRef, changes: networkChanges }),
    networkDetail,
    {
      request: { network: 'admin', changes: { description: 'PXE and management' } },
      response: detailExample,
    },
  ),
  networkDelete: rpc('network-ipam', 'network.delete', 1, netRef, networkDetail, {
    request: { network: 'storage' },
    response: detailExample,
  }),
  /** `lookup_network(ip, category)`: the managed network holding `ip`, else the `unmanaged` one. */
  networkLookup: rpc(
    'network-ipam',
    'network.lookup',
    1,
    z.object({ ip: z.string().min(1).max(64), category: networkCategory.default('admin') }),
    networkDetail,
    { request: { ip: '198.18.0.90' }, response: detailExample },
  ),
  /** The installation's unique local /48 (so the launcher can blackhole it). */
  ulaPrefix: rpc(
    'network-ipam',
    'ula.get',
    1,
    z.object({}),
    z.object({ globalId: z.string(), prefix: z.string() }),
    { request: {}, response: { globalId: '123456789a', prefix: 'fd12:3456:789a::/48' } },
  ),
  rangeCreate: rpc(
    'network-ipam',
    'range.create',
    1,
    z.object({ network: ipamRef, range: rangeInput }),
    rangeDetail,
    {
      request: { network: 'admin', range: { name: 'switch', first: '198.18.0.2/24', last: '198.18.0.9/24' } },
      response: rangeExample,
    },
  ),
  rangeGet: rpc('network-ipam', 'range.get', 1, rangeRef, rangeDetail, {
    request: { range: 'host', network: 'admin' },
    response: rangeExample,
  }),
  rangeList: rpc(
    'network-ipam',
    'range.list',
    1,
    z.object({ network: ipamRef.optional() }),
    z.object({ ranges: z.array(rangeDetail) }),
    { request: { network: 'admin' }, response: { ranges: [rangeExample] } },
  ),
  rangeUpdate: rpc(
    'network-ipam',
    'range.update',
    1,
    rangeRef.extend({ changes: rangeChanges }),
    rangeDetail,
    { request: { range: 3, changes: { last: '198.18.0.250/24' } }, response: rangeExample },
  ),
  rangeDelete: rpc('network-ipam', 'range.delete', 1, rangeRef, rangeDetail, {
    request: { range: 3 },
    response: rangeExample,
  }),
  routerCreate: rpc(
    'network-ipam',
    'router.create',
    1,
    z.object({ network: ipamRef, router: routerInput }),
    routerDetail,
    {
      request: { network: 'admin', router: { address: '198.18.0.1/24', pref: 10 } },
      response: routerExample,
    },
  ),
  routerGet: rpc('network-ipam', 'router.get', 1, z.object({ router: id }), routerDetail, {
    request: { router: 1 },
    response: routerExample,
  }),
  routerList: rpc(
    'network-ipam',
    'router.list',
    1,
    z.object({ network: ipamRef.optional() }),
    z.object({ routers: z.array(routerDetail) }),
    { request: {}, response: { routers: [routerExample] } },
  ),
  routerUpdate: rpc(
    'network-ipam',
    'router.update',
    1,
    z.object({ router: id, changes: routerInput.omit({ family: true }).partial() }),
    routerDetail,
    { request: { router: 1, changes: { pref: 20 } }, response: routerExample },
  ),
  routerDelete: rpc('network-ipam', 'router.delete', 1, z.object({ router: id }), routerDetail, {
    request: { router: 1 },
    response: routerExample,
  }),
  /**
   * Allocates a node's addresses on a network: automatically (admin/host range + host-v6), or from a
   * named range with an optional suggested address. Idempotent: an existing allocation is returned.
   */
  allocate: rpc(
    'network-ipam',
    'allocation.create',
    1,
    z.object({
      node: ipamRef,
      network: ipamRef,
      range: z.string().min(1).max(64).optional(),
      suggestion: z.string().min(1).max(64).optional(),
    }),
    z.object({ allocations: z.array(allocationSummary) }),
    { request: { node: 2, network: 'admin' }, response: { allocations: [allocationExample] } },
  ),
  allocationGet: rpc('network-ipam', 'allocation.get', 1, z.object({ id }), allocationSummary, {
    request: { id: 5 },
    response: allocationExample,
  }),
  /** Releases an address; it becomes free for the next allocation. */
  allocationRelease: rpc('network-ipam', 'allocation.release', 1, z.object({ id }), allocationSummary, {
    request: { id: 5 },
    response: allocationExample,
  }),
  /** Allocations filtered by node (id, name, or `admin` for admin nodes), network and category. */
  allocationFind: rpc(
    'network-ipam',
    'allocation.find',
    1,
    z.object({ node: ipamRef.optional(), network: ipamRef.optional(), category: networkCategory.optional() }),
    z.object({ allocations: z.array(allocationSummary) }),
    { request: { node: 2, category: 'admin' }, response: { allocations: [allocationExample] } },
  ),
};
export const ipamStreams: StreamDecl[] = [];
