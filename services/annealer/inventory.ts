import type { z } from 'zod';
import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { inventoryAnnealRpcs } from '../../shared/catalogue/index.js';
import { UnavailableError } from '../../shared/errors.js';

/**
 * How long an answer from inventory may take. A batch takes milliseconds even under load; past this,
 * inventory is taken to have died with the request (NATS cannot tell) and the work is retried — a start
 * with the same token, a result by redelivery. The runnable question is a plain read: a pass that waits
 * on it waits for nothing else.
 */
const rpcTimeoutMs = 10_000;
const runnableTimeoutMs = 3_000;

export type StartRequest = z.input<typeof inventoryAnnealRpcs.startRuns.request>['runs'][number];
export type Started = z.infer<typeof inventoryAnnealRpcs.startRuns.response>['results'][number];
export type FinishRequest = z.input<typeof inventoryAnnealRpcs.finishRuns.request>['runs'][number];
export type Finished = z.infer<typeof inventoryAnnealRpcs.finishRuns.response>['results'][number];

/** One item of a batch answer: its result, or the error that item alone failed with. */
const unwrap = <R>(r: { result: R } | { error: string }): R => {
  if ('error' in r) throw new UnavailableError(r.error);
  return r.result;
};

/**
 * What the annealer asks inventory. Starts and results travel in batches under load (one inventory
 * transaction per batch); each call answers its own item or throws its own error.
 */
export function inventoryClient(bus: Bus) {
  const start = createBatcher({
    maxBatch: 64,
    maxInFlight: 4,
    send: async (runs: StartRequest[]) =>
      (await bus.request(inventoryAnnealRpcs.startRuns, { runs }, { timeoutMs: rpcTimeoutMs })).results,
  });
  const finish = createBatcher({
    maxBatch: 64,
    maxInFlight: 4,
    send: async (runs: FinishRequest[]) =>
      (await bus.request(inventoryAnnealRpcs.finishRuns, { runs }, { timeoutMs: rpcTimeoutMs })).results,
  });
  return {
    /** Starts a noderole's run, fenced by its token (idempotent per token). */
    startRun: async (run: StartRequest) => unwrap(await start(run)),
    /** Tells inventory how a run ended; applied only with the run's current token. */
    finishRun: async (run: FinishRequest) => unwrap(await finish(run)),
    /** Up to `limit` runnable noderoles on nodes other than `excludeNodeIds`. */
    runnable: async (limit: number, excludeNodeIds: number[]) =>
      (
        await bus.request(
          inventoryAnnealRpcs.runnable,
          { limit, excludeNodeIds },
          { timeoutMs: runnableTimeoutMs },
        )
      ).candidates,
  };
}
export type InventoryClient = ReturnType<typeof inventoryClient>;
