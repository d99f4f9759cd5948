import { type ConsumerHandle, consume, retry } from '../../shared/bus/consume.js';
import { inventoryEvents } from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../shared/errors.js';
import { allocate, releaseNode } from './allocate.js';
import { type Ctx, inTx } from './context.js';
import { findAllocations } from './db/allocation-store.js';
import { findNetwork } from './db/network-store.js';
import { deleteNode, upsertNode } from './db/node-store.js';

/**
 * Events network-ipam reacts to: inventory's node facts (kept as a small projection) and `on_proposed`
 * of a network role (auto-allocate that node's addresses, reference §5.6).
 */
export async function startConsumers(ctx: Ctx): Promise<ConsumerHandle[]> {
  const { bus, log } = ctx;
  const db = ctx.database.db;
  const nodes = await consume(bus, {
    decl: {
      stream: 'EVENTS',
      durable: 'network-ipam-nodes',
      ackWaitMs: 30_000,
      maxDeliver: 5,
    },
    log,
    concurrency: 16,
    handlers: [
      [inventoryEvents.nodeCreated, async ({ node }, env) => upsertNode(db, node, new Date(env.time))],
      [inventoryEvents.nodeChanged, async ({ node }, env) => upsertNode(db, node, new Date(env.time))],
      [
        inventoryEvents.nodeDeleted,
        async ({ node }, _env, c) => {
          const released = await inTx(ctx, async (tx, events) => {
            const list = await findAllocations(tx, { nodeIds: [node.id] });
            await releaseNode(tx, node.id, events, list);
            await deleteNode(tx, node.id);
            return list.length;
          });
          c.log.info({ nodeId: node.id, node: node.name, released }, 'node removed; addresses released');
        },
      ],
    ],
  });
  const proposed = await consume(bus, {
    decl: {
      stream: 'EVENTS',
      durable: 'network-ipam-noderole-proposed',
      filterSubject: inventoryEvents.noderoleProposed.subject,
      ackWaitMs: 30_000,
      maxDeliver: 8,
    },
    log,
    concurrency: 8,
    handlers: [
      [
        inventoryEvents.noderoleProposed,
        async ({ noderole }, _env, c) => {
          if (!noderole.role.startsWith('network-')) return;
          const network = noderole.role.slice('network-'.length);
          if (!(await findNetwork(db, network))) return;
          try {
            const got = await allocate(ctx, { node: noderole.nodeId, network, bind: false });
            c.log.info(
              {
                nodeId: noderole.nodeId,
                noderole: noderole.id,
                network,
                addresses: got.map((a) => a.address),
              },
              'network role proposed; addresses allocated',
            );
          } catch (err) {
            // The node event may still be on its way; anything else (e.g. out of addresses) is final.
            if (err instanceof NotFoundError) return retry(1000, err.message);
            if (err instanceof ConflictError)
              c.log.warn({ err: err.message, network }, 'auto-allocation failed');
            throw err;
          }
          return undefined;
        },
      ],
    ],
  });
  return [nodes, proposed];
}
