import type { Bus } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import { causedBy, type Envelope } from '../../shared/bus/envelope.js';
import {
  type AllocationSummary,
  consumers,
  inventoryEvents,
  inventoryRpcs,
  ipamMessages,
  ipamRpcs,
  type NetworkDetail,
  type NodeSummary,
} from '../../shared/catalogue/index.js';
import { NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { listAllAllocations } from '../../shared/owners.js';
import type { Projection } from './projection.js';

const decl = (durable: string) => consumers.events(durable);

/**
 * The projection's inputs: node, allocation and network facts from the EVENTS stream. Network events
 * carry no ranges or routers, so the network's detail is read from network-ipam when one arrives.
 */
export async function startConsumers(bus: Bus, projection: Projection, log: Logger) {
  const node =
    (deleted: boolean) => async (d: { node: NodeSummary }, env: { time: string }, ctx: { log: Logger }) => {
      const applied = await projection.node(d.node, new Date(env.time), deleted);
      ctx.log.debug(
        { node: d.node.id, bootenv: d.node.bootenv, macs: d.node.macs, applied, deleted },
        'dhcp node seen',
      );
    };
  const nodes = await consume(bus, {
    decl: decl('dhcp-db-nodes'),
    log,
    concurrency: 4,
    handlers: [
      [inventoryEvents.nodeCreated, node(false)],
      [inventoryEvents.nodeChanged, node(false)],
      [inventoryEvents.nodeDeleted, node(true)],
    ],
  });
  const allocation =
    (deleted: boolean) =>
    async (d: { allocation: AllocationSummary }, env: { time: string }, ctx: { log: Logger }) => {
      const applied = await projection.allocation(d.allocation, new Date(env.time), deleted);
      ctx.log.debug(
        { allocation: d.allocation.id, node: d.allocation.nodeId, applied, deleted },
        'dhcp allocation seen',
      );
    };
  const allocations = await consume(bus, {
    decl: decl('dhcp-db-allocations'),
    log,
    concurrency: 4,
    handlers: [
      [ipamMessages.allocationCreated, allocation(false)],
      [ipamMessages.allocationDeleted, allocation(true)],
    ],
  });
  const network = async (d: { network: { id: number } }, env: Envelope, ctx: { log: Logger }) => {
    // Taken before the read: the detail is at least as new as this time.
    const time = new Date();
    try {
      const detail = await bus.request(
        ipamRpcs.networkGet,
        { network: d.network.id },
        { timeoutMs: 10_000, ...causedBy(env) },
      );
      await projection.network(detail, time, false);
      ctx.log.debug({ network: detail.name, ranges: detail.ranges.length }, 'dhcp network seen');
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      ctx.log.debug({ network: d.network.id }, 'network gone before its detail was read');
    }
  };
  const networks = await consume(bus, {
    decl: decl('dhcp-db-networks'),
    log,
    concurrency: 1,
    handlers: [
      [ipamMessages.networkCreated, network],
      [ipamMessages.networkChanged, network],
      [
        ipamMessages.networkDeleted,
        async (d, env) => {
          await projection.network(
            { ...(d.network as NetworkDetail), ranges: [], routers: [] },
            new Date(env.time),
            true,
          );
        },
      ],
    ],
  });
  return {
    stats: () => ({ nodes: nodes.stats, allocations: allocations.stats, networks: networks.stats }),
    async stop() {
      await nodes.stop();
      await allocations.stop();
      await networks.stop();
    },
  };
}

/**
 * Reads the owners' state: inventory's nodes, network-ipam's allocations and networks. An owner that
 * does not answer leaves its part out (the caller keeps what events told it).
 */
export async function readOwners(bus: Bus, log: Logger) {
  const time = new Date();
  const part = async <T>(what: string, f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (err) {
      log.debug({ err, what }, 'owner did not answer the re-sync');
      return undefined;
    }
  };
  const nodes = await part(
    'nodes',
    async () =>
      (await bus.request(inventoryRpcs.listNodes, {}, { timeoutMs: 10_000 })).nodes as NodeSummary[],
  );
  const allocations = await part('allocations', () => listAllAllocations(bus));
  const networks = await part(
    'networks',
    async () => (await bus.request(ipamRpcs.networkList, {}, { timeoutMs: 10_000 })).networks,
  );
  return {
    time,
    all: {
      ...(nodes ? { nodes } : {}),
      ...(allocations ? { allocations } : {}),
      ...(networks ? { networks } : {}),
    },
  };
}
