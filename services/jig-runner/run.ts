import { sql } from 'drizzle-orm';
import { createBatcher } from '../../shared/batcher.js';
import { type Bus, parsePayload } from '../../shared/bus/bus.js';
import type { Lineage } from '../../shared/bus/envelope.js';
import {
  alivenessMessages,
  annealerMessages,
  type JigJob,
  roleRun,
  serviceName,
  wireType,
} from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import { enqueueOutbox, type OutboxRelay } from '../../shared/db/outbox.js';
import { queryRows, queryText } from '../../shared/db/prepared.js';
import { UnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { retrying } from '../../shared/retry.js';
import { sshTargetOf } from '../../shared/ssh/target.js';
import { outbox, runlogs } from './db/schema.js';
import { runScriptJig } from './jigs/script.js';
import type { JigResult } from './jigs/types.js';
import type { RunLocks } from './run-lock.js';

const MAX_LOG = 256 * 1024;

export interface RunnerSettings {
  ackWaitMs: number;
  /** Keep-alives for running jobs (every ack wait / 3); only a test turns them off. */
  keepAlive: boolean;
  /** Ask aliveness-probe about the node after each script run. */
  probeAfterRun: boolean;
}

export interface RunnerDeps {
  bus: Bus;
  db: Db;
  /** This runner's name, recorded with every run it starts. */
  instance: string;
  relay: OutboxRelay;
  locks: RunLocks;
  /** The cluster's SSH private key; throws when none is configured. */
  key: () => string;
  settings: RunnerSettings;
}

/** What the run steps share: the runner's dependencies and the batched runlog writer for noop runs. */
interface RunnerCtx extends RunnerDeps {
  recordDone: (r: DoneRow) => Promise<void>;
}

interface DoneRow {
  runId: number;
  noderoleId: number;
  attempt: number;
  jig: string;
  ok: boolean;
  log: string;
}

/** A job as delivered: the job, its logger, how to keep the delivery ours, and its delivery count. */
interface Delivery {
  job: JigJob;
  jobLog: Logger;
  keepAlive: () => void;
  attempt: number;
  /** What the messages this run sends carry: the job's correlation, caused by the job. */
  lineage: Lineage;
}

/**
 * Runs each delivered job once. JetStream can hand this process the same job twice (a redelivery racing
 * the first pull after a restart); the second delivery waits for the first instead of running the
 * scripts again.
 */
export function createJobRunner(deps: RunnerDeps) {
  const ctx: RunnerCtx = { ...deps, recordDone: doneRecorder(deps) };
  const inflight = new Map<number, Promise<void>>();
  return (job: JigJob, jobLog: Logger, keepAlive: () => void, attempt: number, lineage: Lineage = {}) => {
    const running = inflight.get(job.runId);
    if (running) {
      jobLog.info({ run: job.runId }, 'duplicate delivery of a run in progress here; waiting for it');
      return running;
    }
    const p = handle(ctx, { job, jobLog, keepAlive, attempt, lineage }).finally(() =>
      inflight.delete(job.runId),
    );
    inflight.set(job.runId, p);
    return p;
  };
}

async function handle(ctx: RunnerCtx, d: Delivery) {
  const { job, jobLog } = d;
  if (job.jig === 'noop') return handleNoop(ctx, d);
  const logCtx = { run: job.runId, noderole: job.noderoleId, node: job.node.name, role: job.role };
  if (!(await takeRun(ctx, d))) {
    jobLog.warn({ ...logCtx, fenced: true }, 'run fenced: another runner still holds it; not run here');
    return;
  }
  try {
    // A run this service already finished (a redelivery that waited for its first runner) is not run again.
    const [prior] = await queryRows<{ finished: boolean; runner: string }>(
      ctx.db,
      sql`select finished_at is not null as finished, runner from jig_runner.runlogs
          where run_id = ${job.runId} order by id desc limit 1`,
    );
    if (prior?.finished) {
      jobLog.warn({ ...logCtx, fenced: true, by: prior.runner }, 'run fenced: already run by a runner');
      return;
    }
    await runHeld(ctx, d, logCtx);
  } finally {
    await ctx.locks.release(job.runId);
  }
}

/**
 * noop touches no node, so there is nothing to fence before it and nothing to record half way: no
 * begin round trip, and one runlog row written when it is done. Its result is fenced by the run's
 * token like any other.
 */
async function handleNoop(ctx: RunnerCtx, d: Delivery) {
  const { job, jobLog, attempt, lineage } = d;
  const result = await runJig(ctx.bus, job, ctx.key, lineage);
  await ctx.recordDone({
    runId: job.runId,
    noderoleId: job.noderoleId,
    attempt,
    jig: job.jig,
    ok: result.ok,
    log: result.log,
  });
  jobLog.info(
    { run: job.runId, noderole: job.noderoleId, node: job.node.name, role: job.role, ok: true },
    'run ended',
  );
  // The result's message id makes a publish that did reach JetStream before its ack was lost harmless.
  await throughOutage(d, 'publishing the result', () =>
    ctx.bus.publish(
      annealerMessages.runFinished,
      { runId: job.runId, token: job.token, ok: result.ok, wall: result.wall, runlog: result.log },
      { msgId: `finished:${job.runId}:${job.token}`, ...lineage },
    ),
  );
}

/**
 * A step on the bus tried again while NATS is away (a server killed, a stream's leader moving) instead
 * of spending the job's three deliveries in a second: a job given up on leaves its run waiting for the
 * annealer's deadline. The delivery is kept ours meanwhile; past the role's timeout the error goes up.
 */
async function throughOutage<T>(d: Delivery, what: string, step: () => Promise<T>): Promise<T> {
  const { value, tries } = await retrying(step, {
    retryable: (err) => err instanceof UnavailableError,
    until: Date.now() + d.job.timeoutSeconds * 1000,
    delayMs: (tries) => Math.min(5000, 200 * 2 ** Math.min(tries, 5)),
    onRetry: (err, tries) => {
      if (tries === 1) d.jobLog.warn({ run: d.job.runId, err }, `${what}: NATS unavailable; trying again`);
      d.keepAlive();
    },
  });
  if (tries > 1) d.jobLog.info({ run: d.job.runId, tries }, `${what}: NATS answered again`);
  return value;
}

/** Finished runs' runlogs, written a batch per statement under load. */
function doneRecorder({ db, instance }: RunnerDeps) {
  return createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (rs: DoneRow[]) => {
      await queryText(
        db,
        `insert into jig_runner.runlogs (run_id, noderole_id, attempt, runner, jig, ok, log, finished_at)
         select u.run_id, u.noderole_id, u.attempt, $4, u.jig, u.ok, u.log, now()
         from unnest($1::int[], $2::int[], $3::int[], $5::text[], $6::boolean[], $7::text[])
           as u(run_id, noderole_id, attempt, jig, ok, log)`,
        [
          rs.map((r) => r.runId),
          rs.map((r) => r.noderoleId),
          rs.map((r) => r.attempt),
          instance,
          rs.map((r) => r.jig),
          rs.map((r) => r.ok),
          rs.map((r) => r.log),
        ],
      );
      return rs.map(() => undefined);
    },
  });
}

/**
 * Waits until no other runner holds the run (see run-lock.ts), keeping this delivery ours meanwhile
 * so it does not go on to a third runner. Gives up after the role's own timeout: by then the first
 * runner is either back and reporting, or the annealer's sweep fails the run at its deadline.
 */
async function takeRun(ctx: RunnerCtx, { job, jobLog, keepAlive }: Delivery): Promise<boolean> {
  const giveUpAt = Date.now() + job.timeoutSeconds * 1000;
  const every = Math.max(100, Math.min(1000, Math.floor(ctx.settings.ackWaitMs / 3)));
  for (let waited = false; ; waited = true) {
    if (await ctx.locks.tryTake(job.runId)) return true;
    if (!waited) jobLog.info({ run: job.runId }, 'run held by another runner; waiting for it');
    if (Date.now() > giveUpAt) return false;
    keepAlive();
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A run this runner holds: begun with the annealer, logged, run, probed after, and its result recorded. */
async function runHeld(ctx: RunnerCtx, d: Delivery, logCtx: Record<string, unknown>) {
  const { bus, settings } = ctx;
  const { job, jobLog, lineage } = d;
  const begin = await throughOutage(d, 'beginning the run', () =>
    bus.request(
      annealerMessages.beginRun,
      { runId: job.runId, token: job.token, runner: ctx.instance },
      lineage,
    ),
  );
  if (!begin.proceed) {
    jobLog.warn({ ...logCtx, fenced: true, reason: begin.reason }, 'run not started');
    return;
  }
  const [row] = await ctx.db
    .insert(runlogs)
    .values({
      runId: job.runId,
      noderoleId: job.noderoleId,
      attempt: begin.attempt,
      runner: ctx.instance,
      jig: job.jig,
    })
    .returning({ id: runlogs.id });
  jobLog.info({ ...logCtx, jig: job.jig, attempt: begin.attempt }, 'run started');
  const result = await runKeptAlive(ctx, d);
  const logText =
    result.log.length > MAX_LOG
      ? `[… ${result.log.length - MAX_LOG} bytes cut]\n${result.log.slice(-MAX_LOG)}`
      : result.log;
  jobLog.info({ ...logCtx, ok: result.ok }, 'run ended');
  if (job.jig === 'script' && settings.probeAfterRun) {
    // The probe service reports a dead node to inventory itself; we only ask it to look now.
    await bus
      .request(alivenessMessages.probe, { nodeId: job.node.id }, { timeoutMs: 20_000, ...lineage })
      .catch(() => undefined);
  }
  await recordFinished(ctx, d, row!.id, begin.attempt, result, logText);
}

/** Runs the jig, keeping the job ours meanwhile; a jig that throws is a failed result. */
async function runKeptAlive(ctx: RunnerCtx, { job, keepAlive, lineage }: Delivery): Promise<JigResult> {
  // Keep the job ours while the jig works, well inside the ack wait.
  const alive = ctx.settings.keepAlive
    ? setInterval(keepAlive, Math.max(300, Math.floor(ctx.settings.ackWaitMs / 3)))
    : undefined;
  try {
    return await runJig(ctx.bus, job, ctx.key, lineage);
  } catch (err) {
    return {
      ok: false,
      wall: null,
      log: `${job.jig} jig failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  } finally {
    clearInterval(alive);
  }
}

/** The run log's end and the result in one transaction: a result recorded here is never lost. */
async function recordFinished(
  ctx: RunnerCtx,
  { job, lineage }: Delivery,
  logId: number,
  attempt: number,
  result: JigResult,
  logText: string,
) {
  const { bus } = ctx;
  const def = annealerMessages.runFinished;
  const payload = parsePayload(
    def.schema,
    { runId: job.runId, token: job.token, attempt, ok: result.ok, wall: result.wall, runlog: logText },
    `${def.type} payload`,
  );
  await ctx.db.transaction(async (tx) => {
    await queryRows(
      tx,
      sql`update jig_runner.runlogs set ok = ${result.ok}, log = ${logText}, finished_at = now() where id = ${logId}`,
    );
    const envelope = {
      ...bus.envelope(wireType(def), payload, lineage),
      id: `finished:${job.runId}:${job.token}`,
    };
    await enqueueOutbox(tx, outbox, [{ subject: def.subject, envelope }]);
  });
  void ctx.relay.flush();
}

async function runJig(bus: Bus, job: JigJob, key: () => string, lineage: Lineage): Promise<JigResult> {
  if (job.jig === 'noop') return { ok: true, wall: null, log: `noop jig: ${job.role} on ${job.node.name}` };
  if (job.jig === 'service') {
    const owner = serviceName.safeParse(job.owner);
    if (!owner.success)
      return { ok: false, wall: null, log: `role ${job.role} names no known owning service (${job.owner})` };
    const r = await bus.request(
      roleRun[owner.data],
      {
        runId: job.runId,
        noderoleId: job.noderoleId,
        role: job.role,
        nodeId: job.node.id,
        node: job.node.name,
        data: job.data,
      },
      { timeoutMs: job.timeoutSeconds * 1000, ...lineage },
    );
    return { ok: true, wall: r.wall, log: r.log };
  }
  return runScriptJig(job, await sshTargetOf(bus, job.node, lineage), key());
}
