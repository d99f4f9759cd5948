import type { Bus } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import { causedBy } from '../../shared/bus/envelope.js';
import { consumers, inventoryEvents, ipamMessages } from '../../shared/catalogue/index.js';
import type { Logger } from '../../shared/log.js';
import type { Projection } from './projection.js';

const decl = (durable: string) => consumers.events(durable);

/**
 * The projection's inputs: node, allocation and network facts from the EVENTS stream, one durable consumer each
 * (nats-server 2.9 allows one filter subject per consumer). Unknown node.* or allocation.* types that
 * appear later are dead-lettered by the consumer, harmlessly; the periodic re-sync covers them.
 */
export async function startConsumers(bus: Bus, projection: Projection, log: Logger) {
  const nodeLog = (l: Logger, id: number, name: string) => l.child({ node: id, nodeName: name });
  const nodes = await consume(bus, {
    decl: decl('dns-db-nodes'),
    log,
    concurrency: 4,
    handlers: [
      [
        inventoryEvents.nodeCreated,
        async (d, env, ctx) => {
          const r = await projection.node(d.node, new Date(env.time), false, causedBy(env));
          nodeLog(ctx.log, d.node.id, d.node.name).debug({ ...r }, 'node created');
        },
      ],
      [
        inventoryEvents.nodeChanged,
        async (d, env, ctx) => {
          const r = await projection.node(d.node, new Date(env.time), false, causedBy(env));
          nodeLog(ctx.log, d.node.id, d.node.name).debug({ ...r, changed: d.changed }, 'node changed');
        },
      ],
      [
        inventoryEvents.nodeDeleted,
        async (d, env, ctx) => {
          const r = await projection.node(d.node, new Date(env.time), true, causedBy(env));
          nodeLog(ctx.log, d.node.id, d.node.name).debug({ ...r }, 'node deleted');
        },
      ],
    ],
  });
  const allocations = await consume(bus, {
    decl: decl('dns-db-allocations'),
    log,
    concurrency: 4,
    handlers: [
      [
        ipamMessages.allocationCreated,
        async (d, env, ctx) => {
          const r = await projection.allocation(d.allocation, new Date(env.time), false, causedBy(env));
          ctx.log.debug({ allocation: d.allocation.id, ...r }, 'allocation created');
        },
      ],
      [
        ipamMessages.allocationDeleted,
        async (d, env, ctx) => {
          const r = await projection.allocation(d.allocation, new Date(env.time), true, causedBy(env));
          ctx.log.debug({ allocation: d.allocation.id, ...r }, 'allocation deleted');
        },
      ],
    ],
  });
  const networkSubnets = async (
    d: { network: { id: number; category: string; subnets: string[] } },
    ctx: { log: Logger },
  ) => {
    if (d.network.category === 'unmanaged') return;
    const zones = await projection.networkSubnets(d.network.subnets);
    ctx.log.debug({ network: d.network.id, zones }, 'network subnets seen');
  };
  const networks = await consume(bus, {
    decl: decl('dns-db-networks'),
    log,
    concurrency: 1,
    handlers: [
      [ipamMessages.networkCreated, (d, _env, ctx) => networkSubnets(d, ctx)],
      [ipamMessages.networkChanged, (d, _env, ctx) => networkSubnets(d, ctx)],
      // Reverse zones stay after a network goes: its freed addresses keep saying NXDOMAIN.
      [ipamMessages.networkDeleted, async () => undefined],
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
