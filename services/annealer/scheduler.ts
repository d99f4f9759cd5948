import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { z } from 'zod';
import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import {
  annealerMessages,
  type CommandDef,
  type EventDef,
  inventoryAnnealRpcs,
  inventoryOpRpcs,
  wireType,
} from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry, type OutboxTable } from '../../shared/db/outbox.js';
import { queryRows, queryText } from '../../shared/db/prepared.js';
import { UnavailableError } from '../../shared/errors.js';
import { type Faults, noFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';

export interface SchedulerConfig {
  cap: number;
  highCap: number;
  graceSeconds: number;
  claimTimeoutSeconds: number;
  /** How long a pass waits for the cap lock before giving up until the next pass. */
  lockTimeoutMs: number;
  /** A claim transaction idle this long (its annealer stopped mid-way) is ended by PostgreSQL. */
  idleTxTimeoutMs: number;
}

/** What a jig runner reported for a run. */
interface Outcome {
  ok: boolean;
  wall: Record<string, unknown> | null;
  runlog: string;
}

interface RunRow {
  id: number;
  noderoleId: number;
  nodeId: number;
  lane: 'normal' | 'high';
  state: string;
  token: string;
  role: string | null;
  destructive: boolean;
  createdAt: Date;
  dispatchedAt: Date | null;
  /** `run.begin` calls so far: the attempt a result must come from to count. */
  begins: number;
}

/**
 * How long an answer from inventory may take. A batch takes milliseconds even under load; past this,
 * inventory is taken to have died with the request (NATS cannot tell) and the work is retried — a start
 * with the same token, a result by redelivery. The runnable question is a plain read: a pass that waits
 * on it waits for nothing else.
 */
const rpcTimeoutMs = 10_000;
const runnableTimeoutMs = 3_000;

const runCols = sql`id, noderole_id as "noderoleId", node_id as "nodeId", lane, state, token, role, destructive,
  created_at as "createdAt", dispatched_at as "dispatchedAt", begins`;

/**
 * Picks runnable noderoles, claims them (one per node, cap enforced under an advisory lock, uniqueness by
 * the database), starts them in inventory with a fresh fencing token and puts the job on the JIG queue.
 * Every method is safe to call from several annealer processes at once.
 */
export function createScheduler(deps: {
  db: Db;
  bus: Bus;
  log: Logger;
  config: SchedulerConfig;
  /** Jobs and run events leave through the annealer's outbox, committed with the run's state. */
  outbox: { table: OutboxTable; flush(): void };
  faults?: Faults;
}) {
  const { db, bus, log, config, outbox } = deps;
  const faults = deps.faults ?? noFaults;
  /** An outbox row for `def` whose envelope id is also its de-duplication id. */
  const entry = <S extends z.ZodType>(
    def: EventDef<S> | CommandDef<S>,
    data: z.input<S>,
    id: string,
  ): OutboxEntry => ({
    subject: def.subject,
    envelope: { ...bus.envelope(wireType(def), parsePayload(def.schema, data, `${def.type} payload`)), id },
  });
  const rows = <T>(q: ReturnType<typeof sql>) => queryRows<T>(db, q);
  const dispatching = new Set<Promise<void>>();
  /** Starts and results travel to inventory in batches under load (one transaction per batch). */
  const unwrap = <R>(r: { result: R } | { error: string }): R => {
    if ('error' in r) throw new UnavailableError(r.error);
    return r.result;
  };
  const startRun = createBatcher({
    maxBatch: 64,
    maxInFlight: 4,
    send: async (runs: z.input<typeof inventoryAnnealRpcs.startRuns.request>['runs']) =>
      (await bus.request(inventoryAnnealRpcs.startRuns, { runs }, { timeoutMs: rpcTimeoutMs })).results,
  });
  // The runs table's own writes are grouped the same way: one statement (and one commit) per batch.
  const markRunning = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (
      rs: {
        id: number;
        role: string;
        jig: string;
        destructive: boolean;
        data: string;
        deadlineSeconds: number;
        job: OutboxEntry;
      }[],
    ) => {
      // The job is committed with the run's `running` state: a crash between the two cannot strand a run.
      const moved = await db.transaction(async (tx) => {
        const up = await queryText<{ id: number }>(
          tx,
          `update annealer.runs r set state = 'running', role = u.role, jig = u.jig, destructive = u.destructive,
             data = u.data::jsonb, dispatched_at = now(), deadline = now() + make_interval(secs => u.secs)
           from unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::int[])
             as u(id, role, jig, destructive, data, secs)
           where r.id = u.id and r.state = 'claimed' returning r.id`,
          [
            rs.map((r) => r.id),
            rs.map((r) => r.role),
            rs.map((r) => r.jig),
            rs.map((r) => r.destructive),
            rs.map((r) => r.data),
            rs.map((r) => r.deadlineSeconds),
          ],
        );
        const ids = new Set(up.map((u) => u.id));
        await enqueueOutbox(
          tx,
          outbox.table,
          rs.filter((r) => ids.has(r.id)).map((r) => r.job),
        );
        return ids;
      });
      outbox.flush();
      return rs.map((r) => moved.has(r.id));
    },
  });
  /** Run rows by id, read a batch per statement (results arrive at the rate runs end). */
  const lookupRun = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (ids: number[]) => {
      const found = await queryRows<RunRow>(
        db,
        sql`select ${runCols} from annealer.runs where id = any(${`{${ids.join(',')}}`}::bigint[])`,
      );
      const byId = new Map(found.map((r) => [r.id, r]));
      return ids.map((id) => byId.get(id));
    },
  });
  /**
   * A run's result, kept with the run as soon as it arrives: if inventory cannot take it now, the
   * redelivered message or, past the deadline, the sweep applies this result — not a made-up failure.
   */
  const recordOutcome = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (rs: { id: number; outcome: string }[]) => {
      await queryText(
        db,
        `update annealer.runs r set outcome = u.outcome::jsonb from unnest($1::bigint[], $2::text[]) as u(id, outcome)
         where r.id = u.id and r.state = 'running' and r.outcome is null`,
        [rs.map((r) => r.id), rs.map((r) => r.outcome)],
      );
      return rs.map(() => undefined);
    },
  });
  /** Closes runs still open; answers, per run, whether this call closed it. */
  const markClosed = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (rs: { id: number; state: 'done' | 'failed'; reason: string; event: OutboxEntry }[]) => {
      // `run.finished` is committed with the close, so it is published once a run is closed, crash or not.
      const ids = await db.transaction(async (tx) => {
        const closed = await queryText<{ id: number }>(
          tx,
          `update annealer.runs r set state = u.state, finished_at = now(), reason = u.reason
           from unnest($1::bigint[], $2::text[], $3::text[]) as u(id, state, reason)
           where r.id = u.id and r.state in ('claimed', 'running') returning r.id`,
          [rs.map((r) => r.id), rs.map((r) => r.state), rs.map((r) => r.reason)],
        );
        const ids = new Set(closed.map((c) => c.id));
        await enqueueOutbox(
          tx,
          outbox.table,
          rs.filter((r) => ids.has(r.id)).map((r) => r.event),
        );
        return ids;
      });
      if (ids.size > 0) outbox.flush();
      return rs.map((r) => ids.has(r.id));
    },
  });
  const finishRun = createBatcher({
    maxBatch: 64,
    maxInFlight: 4,
    send: async (runs: z.input<typeof inventoryAnnealRpcs.finishRuns.request>['runs']) =>
      (await bus.request(inventoryAnnealRpcs.finishRuns, { runs }, { timeoutMs: rpcTimeoutMs })).results,
  });

  async function claimNormal(): Promise<RunRow[]> {
    const [busy] = await rows<{ active: number; nodes: number[] | null }>(sql`
      select count(*) filter (where lane = 'normal')::int as active, array_agg(node_id) as nodes
      from annealer.runs where state in ('claimed', 'running')`);
    const capacity = config.cap - (busy?.active ?? 0);
    if (capacity <= 0) return [];
    // Ask for a full cap's worth: runs that end while inventory answers leave more room by the time
    // the claims are made (the room is counted again under the lock below).
    const { candidates } = await bus.request(
      inventoryAnnealRpcs.runnable,
      { limit: Math.min(config.cap, 1000), excludeNodeIds: busy?.nodes ?? [] },
      { timeoutMs: runnableTimeoutMs },
    );
    if (candidates.length === 0) return [];
    return db.transaction(async (tx) => {
      // An annealer stopped while it holds the lock (SIGSTOP, a frozen VM) must not stop the others:
      // PostgreSQL ends its idle transaction, which frees the lock, and a waiter gives up and retries.
      await queryRows(
        tx,
        sql`select set_config('lock_timeout', ${`${config.lockTimeoutMs}ms`}, true),
                   set_config('statement_timeout', ${`${config.lockTimeoutMs + 5000}ms`}, true),
                   set_config('idle_in_transaction_session_timeout', ${`${config.idleTxTimeoutMs}ms`}, true)`,
      );
      await queryRows(tx, sql`select pg_advisory_xact_lock(hashtext('crowbar-annealer-cap'))`);
      await faults.at('annealer-cap-lock');
      const [now] = (
        await tx.execute(
          sql`select count(*)::int as n from annealer.runs where lane = 'normal' and state in ('claimed', 'running')`,
        )
      ).rows as { n: number }[];
      const room = config.cap - (now?.n ?? 0);
      const take = candidates.slice(0, Math.max(0, room));
      if (take.length === 0) return [];
      // One statement for the whole batch; a node or noderole another annealer claimed meanwhile is
      // skipped by the unique indexes.
      const list = (xs: (number | string)[]) => `{${xs.join(',')}}`;
      return (
        await tx.execute(sql`
          insert into annealer.runs (noderole_id, node_id, lane, state, token)
          select c.noderole_id, c.node_id, 'normal', 'claimed', c.token
          from unnest(${list(take.map((c) => c.noderoleId))}::int[], ${list(take.map((c) => c.nodeId))}::int[],
                      ${list(take.map(() => randomUUID()))}::text[]) with ordinality as c(noderole_id, node_id, token, ord)
          order by c.ord
          on conflict do nothing returning ${runCols}`)
      ).rows as unknown as RunRow[];
    });
  }

  /** High lane: queued re-runs of ACTIVE noderoles whose node is free, up to `highCap` at once. */
  async function claimHigh(): Promise<RunRow[]> {
    const out: RunRow[] = [];
    const queued = await rows<{ id: number }>(sql`
      select q.id from annealer.runs q where q.state = 'queued'
        and not exists (select 1 from annealer.runs a where a.node_id = q.node_id and a.state in ('claimed', 'running'))
        and (select count(*) from annealer.runs h where h.lane = 'high' and h.state in ('claimed', 'running')) < ${config.highCap}
      order by q.id limit ${config.highCap}`);
    for (const q of queued) {
      try {
        const r = await rows<RunRow>(
          sql`update annealer.runs set state = 'claimed', created_at = now() where id = ${q.id} and state = 'queued' returning ${runCols}`,
        );
        if (r[0]) out.push(r[0]);
      } catch {
        // Another process claimed a run on that node first (unique index); it waits for the next pass.
      }
    }
    return out;
  }

  async function dispatch(run: RunRow): Promise<void> {
    const res = unwrap(
      await startRun({ noderoleId: run.noderoleId, token: run.token, rerun: run.lane === 'high' }),
    );
    if (!res.started || !res.role || !res.node) {
      await rows(
        sql`update annealer.runs set state = 'cancelled', reason = ${res.reason}, finished_at = now() where id = ${run.id} and state = 'claimed'`,
      );
      log.debug({ run: run.id, noderole: run.noderoleId, reason: res.reason }, 'claim dropped');
      return;
    }
    if (res.skipJig) {
      const why = res.skipReason ?? 'skipped: destructive role has already run on this node; jig skipped';
      log.info({ run: run.id, noderole: run.noderoleId, role: res.role.name, why }, 'jig skipped');
      await rows(sql`update annealer.runs set role = ${res.role.name}, jig = ${res.role.jig},
                     destructive = ${res.role.destructive} where id = ${run.id}`);
      await report({ ...run, role: res.role.name }, { ok: true, wall: null, runlog: why }, 'skipped');
      return;
    }
    const job = entry(
      annealerMessages.jigRun,
      {
        runId: run.id,
        token: run.token,
        noderoleId: run.noderoleId,
        role: res.role.name,
        jig: res.role.jig as 'noop' | 'script' | 'service',
        owner: res.role.owner,
        destructive: res.role.destructive,
        scripts: res.role.scripts,
        timeoutSeconds: res.role.timeoutSeconds,
        node: res.node,
        data: res.data ?? {},
      },
      `jig:${run.id}`,
    );
    const moved = await markRunning({
      id: run.id,
      role: res.role.name,
      jig: res.role.jig,
      destructive: res.role.destructive,
      data: JSON.stringify(res.data ?? {}),
      deadlineSeconds: res.role.timeoutSeconds + config.graceSeconds,
      job,
    });
    if (!moved) {
      log.info({ run: run.id, noderole: run.noderoleId }, 'claim closed before dispatch; job not sent');
      return;
    }
    log.info(
      { run: run.id, noderole: run.noderoleId, node: res.node.name, role: res.role.name, lane: run.lane },
      'run dispatched',
    );
  }

  /** Tells inventory how the run ended (fenced by the token), then closes the run. */
  async function report(
    run: RunRow,
    r: { ok: boolean; wall: Record<string, unknown> | null; runlog: string; requeue?: boolean },
    label?: string,
  ) {
    const res = unwrap(
      await finishRun({ noderoleId: run.noderoleId, token: run.token, requeue: false, ...r }),
    );
    const outcome =
      label ??
      (!res.applied
        ? 'stale'
        : res.state === 'active'
          ? 'active'
          : res.state === 'error'
            ? 'error'
            : 'requeued');
    const started = run.dispatchedAt ?? run.createdAt;
    await markClosed({
      id: run.id,
      state: r.ok ? 'done' : 'failed',
      // The run list shows a skipped jig's reason (e.g. a destructive role that already ran).
      reason: !res.applied ? `stale (${res.state})` : label === 'skipped' ? r.runlog : res.state,
      event: entry(
        annealerMessages.runFinishedEvent,
        {
          runId: run.id,
          noderoleId: run.noderoleId,
          node: String(run.nodeId),
          role: run.role ?? '',
          outcome: outcome as 'active',
          durationMs: Math.max(0, Date.now() - new Date(started).getTime()),
        },
        `run-finished:${run.id}`,
      ),
    });
    log.info({ run: run.id, noderole: run.noderoleId, outcome, applied: res.applied }, 'run finished');
  }

  let stopping = false;
  /** Dispatch retries waiting out their backoff; stopping ends the waits at once. */
  const waits = new Set<() => void>();
  const pause = (ms: number) =>
    new Promise<void>((res) => {
      const done = () => {
        clearTimeout(timer);
        waits.delete(done);
        res();
      };
      const timer = setTimeout(done, ms);
      waits.add(done);
    });

  /**
   * Dispatches a claim; if inventory does not answer (down, restarting), tries again with the same
   * token — a start is idempotent per token — while the claim is still ours and younger than the claim
   * timeout. After that, or when the annealer stops, the claim stays for the sweep to put back in line.
   */
  async function dispatchClaim(run: RunRow): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await dispatch(run);
        return;
      } catch (err) {
        const age = Date.now() - new Date(run.createdAt).getTime();
        if (stopping || age > config.claimTimeoutSeconds * 1000) {
          log.warn({ err, run: run.id, attempt }, 'dispatch failed; the sweep will requeue the claim');
          return;
        }
        log.warn({ err, run: run.id, attempt }, 'dispatch failed; trying again with the same token');
        await pause(Math.min(250 * 2 ** (attempt - 1), 4000));
        const [row] = await rows<{ state: string }>(
          sql`select state from annealer.runs where id = ${run.id}`,
        ).catch(() => [{ state: 'claimed' }]);
        if (row?.state !== 'claimed' || stopping) return;
      }
    }
  }

  return {
    /** One scheduling pass: claim, start and dispatch whatever is runnable within the caps. */
    async pass(): Promise<number> {
      const claims = [...(await claimHigh()), ...(await claimNormal())];
      // Dispatches go on without holding up the next pass: a slot freed meanwhile is filled at once.
      for (const c of claims) {
        const p: Promise<void> = dispatchClaim(c).finally(() => dispatching.delete(p));
        dispatching.add(p);
      }
      return claims.length;
    },

    /** Resolves when every dispatch started so far has ended; with `stop`, retries give up at once. */
    async idle(stop = false): Promise<void> {
      if (stop) {
        stopping = true;
        for (const done of [...waits]) done();
      }
      while (dispatching.size > 0) await Promise.all(dispatching);
    },

    async finished(m: {
      runId: number;
      token: string;
      attempt?: number | undefined;
      ok: boolean;
      wall: Record<string, unknown> | null;
      runlog: string;
    }) {
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
      await recordOutcome({
        id: run.id,
        outcome: JSON.stringify({ ok: m.ok, wall: m.wall, runlog: m.runlog.slice(-65_536) }),
      });
      await report(run, m);
    },

    async begin(req: { runId: number; token: string; runner: string }) {
      const [r] = await rows<{ begins: number; destructive: boolean }>(sql`
        update annealer.runs set begins = begins + 1 where id = ${req.runId} and token = ${req.token} and state = 'running'
        returning begins, destructive`);
      if (!r) return { proceed: false, reason: 'run is no longer active', attempt: 0 };
      if (r.destructive && r.begins > 1) {
        const [run] = await rows<RunRow>(sql`select ${runCols} from annealer.runs where id = ${req.runId}`);
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
    },

    async enqueue(noderoleId: number, reason: string) {
      const nr = await bus.request(inventoryOpRpcs['noderole.get'], { noderole: noderoleId });
      await rows(sql`insert into annealer.runs (noderole_id, node_id, lane, state, token, reason)
                           values (${noderoleId}, ${nr.nodeId}, 'high', 'queued', ${randomUUID()}, ${reason}) on conflict do nothing`);
    },

    /** A dead node's waiting runs are dropped (reference §4.1); running ones finish and inventory re-routes them. */
    async nodeDied(nodeId: number) {
      await rows(sql`update annealer.runs set state = 'cancelled', reason = 'node died', finished_at = now()
                           where node_id = ${nodeId} and state = 'queued'`);
    },

    /** Fails runs whose runner vanished past their deadline, and claims an annealer lost before dispatch. */
    async sweep(): Promise<number> {
      const stale = await rows<RunRow & { outcome: Outcome | null }>(sql`
        select ${runCols}, outcome from annealer.runs where (state = 'running' and deadline < now())
           or (state = 'claimed' and created_at < now() - make_interval(secs => ${config.claimTimeoutSeconds}))`);
      for (const run of stale) {
        // A result that arrived but could not be applied (inventory was away) is applied as it came.
        const r: Outcome & { requeue?: boolean } = run.outcome ?? {
          ok: false,
          wall: null,
          runlog:
            run.state === 'running'
              ? `no result from any jig runner before the deadline (runner died or the role timed out); run ${run.id} failed by the sweep`
              : `run ${run.id} was claimed but never dispatched; put back in line by the sweep`,
          // A claim never reached a runner, so nothing ran: requeue it. A dispatched run may have run: fail it.
          requeue: run.state === 'claimed',
        };
        log.warn(
          { run: run.id, noderole: run.noderoleId, state: run.state, kept: run.outcome !== null },
          run.outcome ? 'applying a kept run result' : 'sweeping stuck run',
        );
        await report(run, r).catch((err: unknown) =>
          log.warn({ err, run: run.id }, 'sweep could not report'),
        );
      }
      return stale.length;
    },

    async list(active: boolean) {
      return rows<{
        id: number;
        noderoleId: number;
        nodeId: number;
        role: string | null;
        lane: string;
        state: string;
        reason: string | null;
        createdAt: string;
      }>(sql`
        select id, noderole_id as "noderoleId", node_id as "nodeId", role, lane, state, reason,
               created_at::text as "createdAt" from annealer.runs
        ${active ? sql`where state in ('queued', 'claimed', 'running')` : sql``} order by id desc limit 1000`);
    },
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
