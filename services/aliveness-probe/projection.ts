import type { Bus } from '../../shared/bus/bus.js';
import { type ConsumerHandle, consume } from '../../shared/bus/consume.js';
import { inventoryEvents, inventoryRpcs, ipamMessages } from '../../shared/catalogue/index.js';
import type { Logger } from '../../shared/log.js';
import type { Store } from './store.js';

/** Reports we make carry this prefix, so our own changes are not mistaken for a self-report. */
export const reasonPrefix = 'probe: ';

/**
 * Keeps the projection of nodes (pinned host key, alive, available, system) and their admin addresses,
 * fed by inventory's and network-ipam's events. One message at a time so updates apply in stream order.
 */
export async function startProjection(deps: {
  bus: Bus;
  store: Store;
  log: Logger;
  /** How long our reports wait after someone else changed a node's aliveness. */
  holdMs: number;
}): Promise<{ stop(): Promise<void> }> {
  const { bus, store, log } = deps;
  const handles: ConsumerHandle[] = [];
  handles.push(
    await consume(bus, {
      decl: {
        stream: 'EVENTS',
        durable: 'aliveness-probe-nodes',
        ackWaitMs: 30_000,
        maxDeliver: 5,
      },
      concurrency: 1,
      log,
      handlers: [
        [inventoryEvents.nodeCreated, async (d, env) => store.upsertNode(d.node, new Date(env.time))],
        [
          inventoryEvents.nodeChanged,
          async (d, env, ctx) => {
            await store.upsertNode(d.node, new Date(env.time));
            if (d.changed.includes('alive') && !d.reason.startsWith(reasonPrefix)) {
              const until = new Date(new Date(env.time).getTime() + deps.holdMs);
              await store.holdAfterExternalChange(d.node.id, until);
              ctx.log.info(
                { node: d.node.id, alive: d.node.alive, reason: d.reason, holdUntil: until.toISOString() },
                'aliveness changed by someone else; probe verdict reset',
              );
            }
          },
        ],
        [inventoryEvents.nodeDeleted, async (d, env) => store.upsertNode(d.node, new Date(env.time), true)],
      ],
    }),
  );
  handles.push(
    await consume(bus, {
      decl: {
        stream: 'EVENTS',
        durable: 'aliveness-probe-allocations',
        ackWaitMs: 30_000,
        maxDeliver: 5,
      },
      concurrency: 1,
      log,
      handlers: [
        [
          ipamMessages.allocationCreated,
          async (d) => {
            if (d.allocation.category === 'admin') await store.upsertAddress(d.allocation, false);
          },
        ],
        [
          ipamMessages.allocationDeleted,
          async (d) => {
            if (d.allocation.category === 'admin') await store.upsertAddress(d.allocation, true);
          },
        ],
      ],
    }),
  );
  return {
    async stop() {
      for (const h of handles) await h.stop();
    },
  };
}

/**
 * Re-reads nodes and admin allocations from their owners, for an installation whose events have aged
 * out of the stream. Best effort: an owner that does not answer is logged and the events still apply.
 */
export async function resyncFromOwners(bus: Bus, store: Store, log: Logger, now: Date): Promise<void> {
  try {
    const { nodes } = await bus.request(inventoryRpcs.listNodes, {}, { timeoutMs: 5000 });
    for (const n of nodes) await store.upsertNode(n, now);
    let afterId = 0;
    for (let page = 0; page < 1000; page++) {
      const { allocations } = await bus.request(ipamMessages.listAllocations, { afterId, limit: 1000 });
      for (const a of allocations) if (a.category === 'admin') await store.upsertAddress(a, false);
      if (allocations.length < 1000) break;
      afterId = allocations.at(-1)?.id ?? afterId;
    }
    log.info({ nodes: nodes.length }, 'projection re-synced from inventory and network-ipam');
  } catch (err) {
    log.info({ err: (err as Error).message }, 'projection re-sync skipped; relying on events');
  }
}
