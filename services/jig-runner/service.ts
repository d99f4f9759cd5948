import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import {
  alivenessMessages,
  annealerMessages,
  type JigJob,
  roleRun,
  serviceName,
  wireType,
} from '../../shared/catalogue/index.js';
import { intFromEnv } from '../../shared/config.js';
import { enqueueOutbox, startOutboxRelay } from '../../shared/db/outbox.js';
import { queryRows, queryText } from '../../shared/db/prepared.js';
import { createFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { sshTargetOf } from '../../shared/ssh/target.js';
import { outbox, runlogs } from './db/schema.js';
import { runScriptJig } from './jigs/script.js';
import type { JigResult } from './jigs/types.js';
import { createRunLocks } from './run-lock.js';

const jigRunnerConfig = z.object({
  /** Jobs this process runs at once; the global cap is the annealer's business. */
  CROWBAR_JIG_CONCURRENCY: intFromEnv(1, 1000).default(16),
  /** The cluster's SSH private key (OpenSSH format) for the script jig. */
  CROWBAR_SSH_KEY: z.string().min(1).optional(),
  /** Ask aliveness-probe about the node after each script run (reference §3.3). */
  CROWBAR_PROBE_AFTER_RUN: z.enum(['true', 'false']).default('true'),
  /** How long a job may go without a keep-alive before JetStream hands it to another runner. */
  CROWBAR_JIG_ACK_WAIT_MS: intFromEnv(1000, 600_000).default(30_000),
  /**
   * Keep-alives for running jobs (every ack wait / 3). Only a test turns them off, to see a redelivery
   * of a run in progress fenced.
   */
  CROWBAR_JIG_KEEPALIVE: z.enum(['true', 'false']).default('true'),
});

const MAX_LOG = 256 * 1024;

async function runJig(bus: Bus, job: JigJob, key: () => string): Promise<JigResult> {
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
      { timeoutMs: job.timeoutSeconds * 1000 },
    );
    return { ok: true, wall: r.wall, log: r.log };
  }
  return runScriptJig(job, await sshTargetOf(bus, job.node), key());
}

export const jigRunnerService: ServiceDef<typeof jigRunnerConfig> = {
  name: 'jig-runner',
  config: jigRunnerConfig,
  schema: {
    name: 'jig_runner',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log, config, instance }) {
    const db = database!.db;
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'jig_runner_outbox',
      bus,
      log,
      faults: createFaults(config, log),
    });
    const locks = createRunLocks({ url: config.DATABASE_URL, applicationName: instance, log });
    let cachedKey: string | null = null;
    const key = () => {
      if (!config.CROWBAR_SSH_KEY)
        throw new Error('CROWBAR_SSH_KEY is not set: the script jig needs the cluster SSH key');
      cachedKey ??= readFileSync(config.CROWBAR_SSH_KEY, 'utf8');
      return cachedKey;
    };
    const finished = (job: JigJob, result: JigResult, logText: string) =>
      bus.publish(
        annealerMessages.runFinished,
        { runId: job.runId, token: job.token, ok: result.ok, wall: result.wall, runlog: logText },
        { msgId: `finished:${job.runId}:${job.token}` },
      );
    /**
     * noop touches no node, so there is nothing to fence before it and nothing to record half way: no
     * begin round trip, and one runlog row written when it is done. Its result is fenced by the run's
     * token like any other.
     */
    /** Finished runs' runlogs, written a batch per statement under load. */
    const recordDone = createBatcher({
      maxBatch: 128,
      maxInFlight: 2,
      send: async (
        rs: { runId: number; noderoleId: number; attempt: number; jig: string; ok: boolean; log: string }[],
      ) => {
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
    const handleNoop = async (job: JigJob, jobLog: Logger, attempt: number) => {
      const result = await runJig(bus, job, key);
      await recordDone({
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
      await finished(job, result, result.log);
    };
    /**
     * Waits until no other runner holds the run (see run-lock.ts), keeping this delivery ours meanwhile
     * so it does not go on to a third runner. Gives up after the role's own timeout: by then the first
     * runner is either back and reporting, or the annealer's sweep fails the run at its deadline.
     */
    const takeRun = async (job: JigJob, jobLog: Logger, keepAlive: () => void): Promise<boolean> => {
      const giveUpAt = Date.now() + job.timeoutSeconds * 1000;
      const every = Math.max(100, Math.min(1000, Math.floor(config.CROWBAR_JIG_ACK_WAIT_MS / 3)));
      for (let waited = false; ; waited = true) {
        if (await locks.tryTake(job.runId)) return true;
        if (!waited) jobLog.info({ run: job.runId }, 'run held by another runner; waiting for it');
        if (Date.now() > giveUpAt) return false;
        keepAlive();
        await new Promise((r) => setTimeout(r, every));
      }
    };
    /** The run log's end and the result in one transaction: a result recorded here is never lost. */
    const recordFinished = async (
      job: JigJob,
      logId: number,
      attempt: number,
      result: JigResult,
      logText: string,
    ) => {
      const def = annealerMessages.runFinished;
      const payload = parsePayload(
        def.schema,
        { runId: job.runId, token: job.token, attempt, ok: result.ok, wall: result.wall, runlog: logText },
        `${def.type} payload`,
      );
      await db.transaction(async (tx) => {
        await queryRows(
          tx,
          sql`update jig_runner.runlogs set ok = ${result.ok}, log = ${logText}, finished_at = now() where id = ${logId}`,
        );
        const envelope = {
          ...bus.envelope(wireType(def), payload),
          id: `finished:${job.runId}:${job.token}`,
        };
        await enqueueOutbox(tx, outbox, [{ subject: def.subject, envelope }]);
      });
      void relay.flush();
    };
    const handle = async (job: JigJob, jobLog: Logger, keepAlive: () => void, attempt: number) => {
      if (job.jig === 'noop') return handleNoop(job, jobLog, attempt);
      const ctx = { run: job.runId, noderole: job.noderoleId, node: job.node.name, role: job.role };
      if (!(await takeRun(job, jobLog, keepAlive))) {
        jobLog.warn({ ...ctx, fenced: true }, 'run fenced: another runner still holds it; not run here');
        return;
      }
      try {
        // A run this service already finished (a redelivery that waited for its first runner) is not run again.
        const [prior] = await queryRows<{ finished: boolean; runner: string }>(
          db,
          sql`select finished_at is not null as finished, runner from jig_runner.runlogs
              where run_id = ${job.runId} order by id desc limit 1`,
        );
        if (prior?.finished) {
          jobLog.warn({ ...ctx, fenced: true, by: prior.runner }, 'run fenced: already run by a runner');
          return;
        }
        await runHeld(job, jobLog, keepAlive, ctx);
      } finally {
        await locks.release(job.runId);
      }
    };
    const runHeld = async (
      job: JigJob,
      jobLog: Logger,
      keepAlive: () => void,
      ctx: Record<string, unknown>,
    ) => {
      const begin = await bus.request(annealerMessages.beginRun, {
        runId: job.runId,
        token: job.token,
        runner: instance,
      });
      if (!begin.proceed) {
        jobLog.warn({ ...ctx, fenced: true, reason: begin.reason }, 'run not started');
        return;
      }
      const [row] = await db
        .insert(runlogs)
        .values({
          runId: job.runId,
          noderoleId: job.noderoleId,
          attempt: begin.attempt,
          runner: instance,
          jig: job.jig,
        })
        .returning({ id: runlogs.id });
      jobLog.info({ ...ctx, jig: job.jig, attempt: begin.attempt }, 'run started');
      let result: JigResult;
      // Keep the job ours while the jig works, well inside the ack wait.
      const alive =
        config.CROWBAR_JIG_KEEPALIVE === 'true'
          ? setInterval(keepAlive, Math.max(300, Math.floor(config.CROWBAR_JIG_ACK_WAIT_MS / 3)))
          : undefined;
      try {
        result = await runJig(bus, job, key);
      } catch (err) {
        result = {
          ok: false,
          wall: null,
          log: `${job.jig} jig failed: ${err instanceof Error ? err.message : String(err)}`,
        };
      } finally {
        clearInterval(alive);
      }
      const logText =
        result.log.length > MAX_LOG
          ? `[… ${result.log.length - MAX_LOG} bytes cut]\n${result.log.slice(-MAX_LOG)}`
          : result.log;
      jobLog.info({ ...ctx, ok: result.ok }, 'run ended');
      if (job.jig === 'script' && config.CROWBAR_PROBE_AFTER_RUN === 'true') {
        // The probe service reports a dead node to inventory itself; we only ask it to look now.
        await bus
          .request(alivenessMessages.probe, { nodeId: job.node.id }, { timeoutMs: 20_000 })
          .catch(() => undefined);
      }
      await recordFinished(job, row!.id, begin.attempt, result, logText);
    };
    // JetStream can hand this process the same job twice (a redelivery racing the first pull after a
    // restart); the second delivery waits for the first instead of running the scripts again.
    const inflight = new Map<number, Promise<void>>();
    const once = (job: JigJob, jobLog: Logger, keepAlive: () => void, attempt: number) => {
      const running = inflight.get(job.runId);
      if (running) {
        jobLog.info({ run: job.runId }, 'duplicate delivery of a run in progress here; waiting for it');
        return running;
      }
      const p = handle(job, jobLog, keepAlive, attempt).finally(() => inflight.delete(job.runId));
      inflight.set(job.runId, p);
      return p;
    };
    const consumer = await consume(bus, {
      decl: {
        stream: 'JIG',
        durable: 'jig-runner',
        ackWaitMs: config.CROWBAR_JIG_ACK_WAIT_MS,
        maxDeliver: 3,
      },
      log,
      concurrency: config.CROWBAR_JIG_CONCURRENCY,
      handlers: [
        [annealerMessages.jigRun, async (job, _env, ctx) => once(job, ctx.log, ctx.keepAlive, ctx.attempt)],
      ],
    });
    return {
      detail: () => ({ ...consumer.stats }),
      async stop() {
        await consumer.stop();
        await relay.stop();
        await locks.close();
      },
    };
  },
};
