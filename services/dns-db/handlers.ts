import type { Bus } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import { causedBy } from '../../shared/bus/envelope.js';
import { type ConsumerDecl, inventoryEvents, ipamMessages } from '../../shared/catalogue/index.js';
import type { Logger } from '../../shared/log.js';
import type { Projection } from './projection.js';

const decl = (durable: string, filterSubject: string): ConsumerDecl => ({
  stream: 'EVENTS',
  durable,
  filterSubject,
  ackWaitMs: 30_000,
  maxDeliver: 10,
});

/**
 * The projection's inputs: node and allocation facts from the EVENTS stream, one durable consumer each
 * (nats-server 2.9 allows one filter subject per consumer). Unknown node.* or allocation.* types that
 * appear later are dead-lettered by the consumer, harmlessly; the periodic re-sync covers them.
 */
export async function startConsumers(bus: Bus, projection: Projection, log: Logger) {
  const nodeLog = (l: Logger, id: number, name: string) => l.child({ node: id, nodeName: name });
  const nodes = await consume(bus, {
    decl: decl('dns-db-nodes', 'evt.node.>'),
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
    decl: decl('dns-db-allocations', 'evt.allocation.>'),
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
  return {
    stats: () => ({ nodes: nodes.stats, allocations: allocations.stats }),
    async stop() {
      await nodes.stop();
      await allocations.stop();
    },
  };
}
