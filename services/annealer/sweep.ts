import type { Db } from '../../shared/db/database.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import type { Report, Results } from './results.js';

/** What the sweep reports for an overdue run that has no kept result. */
function lostRun(run: store.RunRow): Report {
  return run.state === 'running'
    ? {
        ok: false,
        wall: null,
        runlog: `no result from any jig runner before the deadline (runner died or the role timed out); run ${run.id} failed by the sweep`,
        // A dispatched run may have run: fail it.
        requeue: false,
      }
    : {
        ok: false,
        wall: null,
        runlog: `run ${run.id} was claimed but never dispatched; put back in line by the sweep`,
        // A claim never reached a runner, so nothing ran: requeue it.
        requeue: true,
      };
}

/**
 * Deadlines and requeues: applies a result kept with a run past its deadline (inventory was away when
 * it came), fails a running run whose runner vanished, and puts back in line a claim an annealer lost
 * before dispatch. Answers how many runs it handled.
 */
export async function sweepOverdue(deps: {
  db: Db;
  log: Logger;
  claimTimeoutSeconds: number;
  results: Pick<Results, 'report'>;
}): Promise<number> {
  const { db, log, results } = deps;
  const overdue = await store.overdueRuns(db, deps.claimTimeoutSeconds);
  for (const run of overdue) {
    log.warn(
      { run: run.id, noderole: run.noderoleId, state: run.state, kept: run.outcome !== null },
      run.outcome ? 'applying a kept run result' : 'sweeping stuck run',
    );
    await results
      .report(run, run.outcome ?? lostRun(run))
      .catch((err: unknown) => log.warn({ err, run: run.id }, 'sweep could not report'));
  }
  return overdue.length;
}
