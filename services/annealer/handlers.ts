import type { Bus } from '../../shared/bus/bus.js';
import { type ConsumerHandle, consume } from '../../shared/bus/consume.js';
import { annealerMessages, consumers, inventoryEvents, system } from '../../shared/catalogue/index.js';
import type { Logger } from '../../shared/log.js';
import { runOfJigJob } from './dispatch.js';
import type { Scheduler } from './scheduler.js';

/**
 * What the annealer consumes: runners' results and re-run requests on its command queue, and the
 * inventory events that may make something runnable (each `kick`s a scheduling pass).
 */
export function startConsumers(deps: {
  bus: Bus;
  log: Logger;
  scheduler: Scheduler;
  kick: () => void;
  opts: { ackWaitMs: number; cap: number };
}): Promise<ConsumerHandle[]> {
  const { bus, log, scheduler, kick, opts } = deps;
  const kickOn = async () => {
    kick();
  };
  return Promise.all([
    consume(bus, {
      decl: {
        stream: 'ANNEALER',
        durable: 'annealer',
        ackWaitMs: opts.ackWaitMs,
        maxDeliver: 10,
      },
      log,
      // Results of up to the whole cap at once: each waits mostly on inventory, not on this process.
      concurrency: Math.max(32, opts.cap),
      handlers: [
        [
          annealerMessages.runFinished,
          async (m) => {
            await scheduler.finished(m);
            kick();
          },
        ],
        [
          annealerMessages.enqueue,
          async (m) => {
            await scheduler.enqueue(m.noderoleId, m.reason);
            kick();
          },
        ],
      ],
    }),
    consume(bus, {
      decl: {
        stream: 'EVENTS',
        durable: 'annealer-noderoles',
        ackWaitMs: 30_000,
        maxDeliver: 5,
      },
      log,
      handlers: [
        [inventoryEvents.noderoleProposed, kickOn],
        [inventoryEvents.noderoleTodo, kickOn],
        [inventoryEvents.noderoleBlocked, kickOn],
        [inventoryEvents.noderoleTransition, kickOn],
        [inventoryEvents.noderoleActive, kickOn],
        [inventoryEvents.noderoleError, kickOn],
        [inventoryEvents.noderoleDeleted, kickOn],
      ],
    }),
    consume(bus, {
      decl: {
        stream: 'EVENTS',
        durable: 'annealer-nodes',
        ackWaitMs: 30_000,
        maxDeliver: 5,
      },
      log,
      handlers: [
        [inventoryEvents.nodeCreated, kickOn],
        [
          inventoryEvents.nodeChanged,
          async (m) => {
            if (m.changed.includes('alive') && !m.node.alive) await scheduler.nodeDied(m.node.id);
            kick();
          },
        ],
        [inventoryEvents.nodeDeleted, async (m) => scheduler.nodeDied(m.node.id)],
      ],
    }),
    consume(bus, {
      decl: {
        stream: 'EVENTS',
        durable: 'annealer-deployments',
        ackWaitMs: 30_000,
        maxDeliver: 5,
      },
      log,
      handlers: [
        [inventoryEvents.deploymentCreated, kickOn],
        [inventoryEvents.deploymentCommitted, kickOn],
        [inventoryEvents.deploymentProposed, kickOn],
        [inventoryEvents.deploymentDeleted, kickOn],
      ],
    }),
    // A jig job the runners gave up on (dead-lettered) never brings a result: its run fails now, with
    // the runners' reason, rather than holding a slot of the cap until its deadline.
    consume(bus, {
      decl: consumers.events('annealer-dead-letters', 5),
      log,
      handlers: [
        [
          system.messageDeadLettered,
          async (m) => {
            const run = m.stream === 'JIG' ? runOfJigJob(m.messageId) : null;
            if (run !== null && (await scheduler.abandoned(run, m.reason))) kick();
          },
        ],
      ],
    }),
  ]);
}
