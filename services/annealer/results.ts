import type { z } from 'zod';
import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { annealerMessages } from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import type { OutboxEntry } from '../../shared/db/outbox.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import type { Finished, InventoryClient } from './inventory.js';
import { type AnnealerOutbox, outboxEntry, writeWithEntries } from './outbox.js';

/** What a runner sends when its run ends. */
export type RunResult = z.infer<typeof annealerMessages.runFinished.schema>;
/** How a run ended, as its `run.finished` event says. */
export type RunOutcome = z.infer<typeof annealerMessages.runFinishedEvent.schema>['outcome'];
type Applied = Extract<Finished, { result: unknown }>['result'];

/** A run's result, and whether the noderole goes back in line (the run never reached a runner). */
export type Report = store.Outcome & { requeue?: boolean };

const outcomeOf = (res: Applied): RunOutcome =>
  !res.applied ? 'stale' : res.state === 'active' ? 'active' : res.state === 'error' ? 'error' : 'requeued';

/** Results are kept with their run at most this long (the tail of the runlog, which is what is read). */
const keptRunlogChars = 65_536;

/** Results arrive at the rate runs end: the runs table's reads and writes go a batch per statement. */
function runBatchers(db: Db, outbox: AnnealerOutbox) {
  const lookupRun = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: (ids: number[]) => store.runsById(db, ids),
  });
  const keepOutcome = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (rs: { id: number; outcome: store.Outcome }[]) => {
      await store.recordOutcomes(db, rs);
      return rs.map(() => undefined);
    },
  });
  /** Closes runs still open; answers, per run, whether this call closed it. */
  const close = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    // `run.finished` is committed with the close, so it is published once a run is closed, crash or not.
    send: (rs: { id: number; state: 'done' | 'failed'; reason: string; event: OutboxEntry }[]) =>
      writeWithEntries(db, outbox, rs, store.closeRuns, (r) => r.event),
  });
  return { lookupRun, keepOutcome, close };
}

/** The `run.finished` event of a run, committed with its close. */
function finishedEvent(bus: Bus, run: store.RunRow, outcome: RunOutcome): OutboxEntry {
  const started = run.dispatchedAt ?? run.createdAt;
  return outboxEntry(
    bus,
    annealerMessages.runFinishedEvent,
    {
      runId: run.id,
      noderoleId: run.noderoleId,
      node: String(run.nodeId),
      role: run.role ?? '',
      outcome,
      durationMs: Math.max(0, Date.now() - new Date(started).getTime()),
    },
    `run-finished:${run.id}`,
  );
}

/**
 * Applying results: a result counts only with the run's current token and from its newest attempt; it is
 * kept with the run first (so a result inventory could not take yet is applied later, not lost), then
 * reported to inventory, and the run is closed with its `run.finished` event in one transaction.
 */
export function createResults(deps: {
  db: Db;
  bus: Bus;
  log: Logger;
  inventory: InventoryClient;
  outbox: AnnealerOutbox;
}) {
  const { db, bus, log, inventory } = deps;
  const { lookupRun, keepOutcome, close } = runBatchers(db, deps.outbox);

  /** Tells inventory how the run ended (fenced by the token), then closes the run. */
  async function report(run: store.RunRow, result: Report, how: 'ran' | 'skipped' = 'ran') {
    const res = await inventory.finishRun({
      noderoleId: run.noderoleId,
      token: run.token,
      ok: result.ok,
      wall: result.wall,
      runlog: result.runlog,
      requeue: result.requeue ?? false,
    });
    const outcome: RunOutcome = how === 'skipped' ? 'skipped' : outcomeOf(res);
    await close({
      id: run.id,
      state: result.ok ? 'done' : 'failed',
      // The run list shows a skipped jig's reason (e.g. a destructive role that already ran).
      reason: !res.applied ? `stale (${res.state})` : how === 'skipped' ? result.runlog : res.state,
      event: finishedEvent(bus, run, outcome),
    });
    log.info({ run: run.id, noderole: run.noderoleId, outcome, applied: res.applied }, 'run finished');
  }

  /** A runner's result: ignored unless it is for the running run's token and newest attempt. */
  async function finished(m: RunResult) {
    const run = await lookupRun(m.runId);
    if (run?.state !== 'running' || run.token !== m.token) {
      log.info({ run: m.runId, state: run?.state ?? 'missing' }, 'late or duplicate run result ignored');
      return;
    }
    // A runner that was away (paused, cut off) while its run was begun again elsewhere: only the
    // newest attempt's result counts.
    if (m.attempt !== undefined && m.attempt < run.begins) {
      log.warn(
        { run: m.runId, attempt: m.attempt, current: run.begins, fenced: true },
        'result of a superseded attempt ignored',
      );
      return;
    }
    const result = { ok: m.ok, wall: m.wall, runlog: m.runlog };
    await keepOutcome({ id: run.id, outcome: { ...result, runlog: m.runlog.slice(-keptRunlogChars) } });
    await report(run, result);
  }

  /** A runner asks before it touches the node: counts the attempt; a destructive run is begun once. */
  async function begin(
    req: z.infer<typeof annealerMessages.beginRun.request>,
  ): Promise<z.input<typeof annealerMessages.beginRun.response>> {
    const r = await store.countBegin(db, req.runId, req.token);
    if (!r) return { proceed: false, reason: 'run is no longer active', attempt: 0 };
    if (r.destructive && r.begins > 1) {
      const run = await store.runById(db, req.runId);
      const why =
        'destructive role was interrupted mid-run; it is not run twice — check the node, then retry the noderole';
      if (run) await report(run, { ok: false, wall: null, runlog: why });
      return { proceed: false, reason: why, attempt: r.begins };
    }
    return {
      proceed: true,
      reason: r.begins > 1 ? 'retry after a lost runner' : 'first attempt',
      attempt: r.begins,
    };
  }

  /** A job the runners gave up on: its run, if still running, fails with their reason. */
  async function abandoned(runId: number, reason: string): Promise<boolean> {
    const run = await lookupRun(runId);
    if (run?.state !== 'running') return false;
    log.warn({ run: runId, noderole: run.noderoleId, reason }, 'jig job dead-lettered; failing its run');
    await report(run, {
      ok: false,
      wall: null,
      runlog: `the jig runners gave up on run ${runId} (${reason}); it may not have run`,
    });
    return true;
  }

  return { report, finished, begin, abandoned };
}
export type Results = ReturnType<typeof createResults>;
