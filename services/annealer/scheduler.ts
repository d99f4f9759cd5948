import type { Bus } from '../../shared/bus/bus.js';
import { inventoryOpRpcs } from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import { type Faults, noFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import { createDispatcher, type DispatchConfig } from './dispatch.js';
import { inventoryClient } from './inventory.js';
import type { AnnealerOutbox } from './outbox.js';
import { createResults } from './results.js';
import { sweepOverdue } from './sweep.js';

export type SchedulerConfig = DispatchConfig;

/**
 * Picks runnable noderoles, claims them (one per node, cap enforced under an advisory lock, uniqueness by
 * the database), starts them in inventory with a fresh fencing token and puts the job on the JIG queue
 * (`dispatch.ts`); applies the runners' results (`results.ts`); fails or requeues what is overdue
 * (`sweep.ts`). Every method is safe to call from several annealer processes at once.
 */
export function createScheduler(deps: {
  db: Db;
  bus: Bus;
  log: Logger;
  config: SchedulerConfig;
  /** Jobs and run events leave through the annealer's outbox, committed with the run's state. */
  outbox: AnnealerOutbox;
  faults?: Faults;
}) {
  const { db, bus, log, config, outbox } = deps;
  const inventory = inventoryClient(bus);
  const results = createResults({ db, bus, log, inventory, outbox });
  const dispatcher = createDispatcher({
    db,
    bus,
    log,
    config,
    faults: deps.faults ?? noFaults,
    inventory,
    outbox,
    results,
  });

  return {
    pass: () => dispatcher.pass(),
    idle: (stop?: boolean) => dispatcher.idle(stop),
    finished: results.finished,
    begin: results.begin,
    abandoned: results.abandoned,

    /** Queues a high-lane re-run of an ACTIVE noderole. */
    async enqueue(noderoleId: number, reason: string) {
      const nr = await bus.request(inventoryOpRpcs['noderole.get'], { noderole: noderoleId });
      await store.insertQueued(db, { noderoleId, nodeId: nr.nodeId, reason });
    },

    /** A dead node's waiting runs are dropped (reference §4.1); running ones finish and inventory re-routes them. */
    nodeDied: (nodeId: number) => store.cancelQueuedOnNode(db, nodeId, 'node died'),

    sweep: () => sweepOverdue({ db, log, claimTimeoutSeconds: config.claimTimeoutSeconds, results }),

    list: (active: boolean, limit?: number, before?: number) => store.listRuns(db, active, limit, before),
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
