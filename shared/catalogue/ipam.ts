import { z } from 'zod';
import { event, rpc, type StreamDecl } from './define.js';

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
export const ipamStreams: StreamDecl[] = [];
