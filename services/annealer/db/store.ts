import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { JsonObject } from '../../../shared/catalogue/json.js';
import type { Db } from '../../../shared/db/database.js';
import { type Queryable, queryRows, queryText } from '../../../shared/db/prepared.js';

/**
 * Every query the annealer makes on `annealer.runs`. Each runs as a named prepared statement: values
 * travel as parameters (arrays for batches), so the texts are fixed and planned once per connection.
 */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** What a jig runner reported for a run, kept with the run until inventory has taken it. */
export interface Outcome {
  ok: boolean;
  wall: JsonObject | null;
  runlog: string;
}

export type Lane = 'normal' | 'high';

export interface RunRow {
  id: number;
  noderoleId: number;
  nodeId: number;
  lane: Lane;
  state: string;
  token: string;
  role: string | null;
  destructive: boolean;
  /** Timestamps arrive as PostgreSQL's text (see `rawTypes`); `new Date()` reads them. */
  createdAt: string;
  dispatchedAt: string | null;
  /** `run.begin` calls so far: the attempt a result must come from to count. */
  begins: number;
}

/** A row of the run list (`run.list`). */
export interface RunListing {
  id: number;
  noderoleId: number;
  nodeId: number;
  role: string | null;
  lane: string;
  state: string;
  reason: string | null;
  createdAt: string;
}

const runCols = sql`id, noderole_id as "noderoleId", node_id as "nodeId", lane, state, token, role, destructive,
  created_at as "createdAt", dispatched_at as "dispatchedAt", begins`;

/** One array parameter (`{1,2,3}`) instead of one parameter per value, which PostgreSQL caps at 65,535. */
const pgArray = (xs: (number | string)[]) => `{${xs.join(',')}}`;

// --- claims --------------------------------------------------------------------------------------

/** Normal-lane runs in flight, and every node that has a run in flight (either lane). */
export async function inFlight(db: Queryable): Promise<{ normal: number; nodeIds: number[] }> {
  const [busy] = await queryRows<{ active: number; nodes: number[] | null }>(
    db,
    sql`
      select count(*) filter (where lane = 'normal')::int as active, array_agg(node_id) as nodes
      from annealer.runs where state in ('claimed', 'running')`,
  );
  return { normal: busy?.active ?? 0, nodeIds: busy?.nodes ?? [] };
}

/**
 * Takes the cap lock for the rest of `tx`. An annealer stopped while it holds the lock (SIGSTOP, a
 * frozen VM) must not stop the others: PostgreSQL ends its idle transaction, which frees the lock, and
 * a waiter gives up after `lockTimeoutMs` and retries on its next pass.
 */
export async function lockCap(tx: Tx, timeouts: { lockTimeoutMs: number; idleTxTimeoutMs: number }) {
  await queryRows(
    tx,
    sql`select set_config('lock_timeout', ${`${timeouts.lockTimeoutMs}ms`}, true),
               set_config('statement_timeout', ${`${timeouts.lockTimeoutMs + 5000}ms`}, true),
               set_config('idle_in_transaction_session_timeout', ${`${timeouts.idleTxTimeoutMs}ms`}, true)`,
  );
  await queryRows(tx, sql`select pg_advisory_xact_lock(hashtext('crowbar-annealer-cap'))`);
}

/** Normal-lane runs in flight, counted again under the cap lock. */
export async function normalInFlight(tx: Tx): Promise<number> {
  const [now] = await queryRows<{ n: number }>(
    tx,
    sql`select count(*)::int as n from annealer.runs where lane = 'normal' and state in ('claimed', 'running')`,
  );
  return now?.n ?? 0;
}

/**
 * Claims the candidates in one statement, each with a fresh token; a node or noderole another annealer
 * claimed meanwhile is skipped by the unique indexes. Answers the claims made, in candidate order.
 */
export async function insertClaims(
  tx: Tx,
  candidates: { noderoleId: number; nodeId: number }[],
): Promise<RunRow[]> {
  return queryRows<RunRow>(
    tx,
    sql`
      insert into annealer.runs (noderole_id, node_id, lane, state, token)
      select c.noderole_id, c.node_id, 'normal', 'claimed', c.token
      from unnest(${pgArray(candidates.map((c) => c.noderoleId))}::int[], ${pgArray(candidates.map((c) => c.nodeId))}::int[],
                  ${pgArray(candidates.map(() => randomUUID()))}::text[]) with ordinality as c(noderole_id, node_id, token, ord)
      order by c.ord
      on conflict do nothing returning ${runCols}`,
  );
}

/** Queued high-lane runs whose node is free, while the lane has room (up to `highCap`). */
export async function claimableQueued(db: Queryable, highCap: number): Promise<number[]> {
  const queued = await queryRows<{ id: number }>(
    db,
    sql`
      select q.id from annealer.runs q where q.state = 'queued'
        and not exists (select 1 from annealer.runs a where a.node_id = q.node_id and a.state in ('claimed', 'running'))
        and (select count(*) from annealer.runs h where h.lane = 'high' and h.state in ('claimed', 'running')) < ${highCap}
      order by q.id limit ${highCap}`,
  );
  return queued.map((q) => q.id);
}

/** Claims a queued run; throws when another run on its node was claimed first (unique index). */
export async function claimQueued(db: Queryable, id: number): Promise<RunRow | undefined> {
  const [run] = await queryRows<RunRow>(
    db,
    sql`update annealer.runs set state = 'claimed', created_at = now() where id = ${id} and state = 'queued' returning ${runCols}`,
  );
  return run;
}

/** Adds a high-lane re-run unless the noderole already has a run waiting or in flight. */
export async function insertQueued(
  db: Queryable,
  run: { noderoleId: number; nodeId: number; reason: string },
) {
  await queryRows(
    db,
    sql`insert into annealer.runs (noderole_id, node_id, lane, state, token, reason)
        values (${run.noderoleId}, ${run.nodeId}, 'high', 'queued', ${randomUUID()}, ${run.reason}) on conflict do nothing`,
  );
}

/** Drops a node's queued runs. */
export async function cancelQueuedOnNode(db: Queryable, nodeId: number, reason: string) {
  await queryRows(
    db,
    sql`update annealer.runs set state = 'cancelled', reason = ${reason}, finished_at = now()
        where node_id = ${nodeId} and state = 'queued'`,
  );
}

// --- dispatch ------------------------------------------------------------------------------------

/** Drops a claim inventory would not start. */
export async function cancelClaim(db: Queryable, id: number, reason: string) {
  await queryRows(
    db,
    sql`update annealer.runs set state = 'cancelled', reason = ${reason}, finished_at = now() where id = ${id} and state = 'claimed'`,
  );
}

/** Records the role of a run whose jig is skipped (it is closed at once, without a runner). */
export async function setRole(
  db: Queryable,
  id: number,
  role: { name: string; jig: string; destructive: boolean },
) {
  await queryRows(
    db,
    sql`update annealer.runs set role = ${role.name}, jig = ${role.jig},
        destructive = ${role.destructive} where id = ${id}`,
  );
}

export interface Dispatched {
  id: number;
  role: string;
  jig: string;
  destructive: boolean;
  /** The noderole's data as JSON text. */
  data: string;
  deadlineSeconds: number;
}

/** Moves claims still open to `running` with their deadline; answers the ids moved. */
export async function markRunning(tx: Tx, rs: Dispatched[]): Promise<Set<number>> {
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
  return new Set(up.map((u) => u.id));
}

/** A run's state, or undefined when it is gone. */
export async function runState(db: Queryable, id: number): Promise<string | undefined> {
  const [row] = await queryRows<{ state: string }>(db, sql`select state from annealer.runs where id = ${id}`);
  return row?.state;
}

// --- results -------------------------------------------------------------------------------------

/** Run rows by id, in the order asked (undefined for a run that does not exist). */
export async function runsById(db: Queryable, ids: number[]): Promise<(RunRow | undefined)[]> {
  const found = await queryRows<RunRow>(
    db,
    sql`select ${runCols} from annealer.runs where id = any(${pgArray(ids)}::bigint[])`,
  );
  const byId = new Map(found.map((r) => [r.id, r]));
  return ids.map((id) => byId.get(id));
}

/** Keeps each result with its run, if the run is still running and has none yet. */
export async function recordOutcomes(db: Queryable, rs: { id: number; outcome: Outcome }[]) {
  await queryText(
    db,
    `update annealer.runs r set outcome = u.outcome::jsonb from unnest($1::bigint[], $2::text[]) as u(id, outcome)
     where r.id = u.id and r.state = 'running' and r.outcome is null`,
    [rs.map((r) => r.id), rs.map((r) => JSON.stringify(r.outcome))],
  );
}

/** Closes runs still open; answers the ids this call closed. */
export async function closeRuns(
  tx: Tx,
  rs: { id: number; state: 'done' | 'failed'; reason: string }[],
): Promise<Set<number>> {
  const closed = await queryText<{ id: number }>(
    tx,
    `update annealer.runs r set state = u.state, finished_at = now(), reason = u.reason
     from unnest($1::bigint[], $2::text[], $3::text[]) as u(id, state, reason)
     where r.id = u.id and r.state in ('claimed', 'running') returning r.id`,
    [rs.map((r) => r.id), rs.map((r) => r.state), rs.map((r) => r.reason)],
  );
  return new Set(closed.map((c) => c.id));
}

/** Counts a runner's begin of a running run (fenced by its token); undefined when the run is not running. */
export async function countBegin(
  db: Queryable,
  runId: number,
  token: string,
): Promise<{ begins: number; destructive: boolean } | undefined> {
  const [r] = await queryRows<{ begins: number; destructive: boolean }>(
    db,
    sql`
      update annealer.runs set begins = begins + 1 where id = ${runId} and token = ${token} and state = 'running'
      returning begins, destructive`,
  );
  return r;
}

export async function runById(db: Queryable, id: number): Promise<RunRow | undefined> {
  const [run] = await queryRows<RunRow>(db, sql`select ${runCols} from annealer.runs where id = ${id}`);
  return run;
}

// --- sweep and listing ---------------------------------------------------------------------------

/** Running runs past their deadline and claims older than the claim timeout, with any kept result. */
export async function overdueRuns(
  db: Queryable,
  claimTimeoutSeconds: number,
): Promise<(RunRow & { outcome: Outcome | null })[]> {
  return queryRows<RunRow & { outcome: Outcome | null }>(
    db,
    sql`
      select ${runCols}, outcome from annealer.runs where (state = 'running' and deadline < now())
         or (state = 'claimed' and created_at < now() - make_interval(secs => ${claimTimeoutSeconds}))`,
  );
}

/**
 * The newest `limit` runs older than run `before` (keyset, for paging); with `active`, only those
 * waiting or in flight. `next` is the cursor of the page after, null on the last.
 */
export async function listRuns(
  db: Queryable,
  active: boolean,
  limit = 1000,
  before?: number,
): Promise<{ runs: RunListing[]; next: string | null }> {
  const where = [
    ...(active ? [sql`state in ('queued', 'claimed', 'running')`] : []),
    ...(before !== undefined ? [sql`id < ${before}`] : []),
  ];
  const rows = await queryRows<RunListing>(
    db,
    sql`
      select id, noderole_id as "noderoleId", node_id as "nodeId", role, lane, state, reason,
             created_at::text as "createdAt" from annealer.runs
      ${where.length ? sql`where ${sql.join(where, sql` and `)}` : sql``} order by id desc limit ${limit + 1}`,
  );
  const runs = rows.slice(0, limit);
  return { runs, next: rows.length > limit ? String(runs.at(-1)!.id) : null };
}
