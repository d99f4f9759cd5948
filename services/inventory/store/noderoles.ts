import { type SQL, sql } from 'drizzle-orm';
import type { NoderoleState, NoderoleSummary } from '../../../shared/catalogue/index.js';
import { idIn, type StoreTx } from './query.js';

/** Queries on `inventory.noderoles` rows themselves: reading, locking, state and data updates. */

export interface NoderoleRow {
  id: number;
  nodeId: number;
  roleId: number;
  deploymentId: number;
  state: NoderoleState;
  cohort: number;
  runCount: number;
  available: boolean;
  runToken: string | null;
}

/** The columns of a NoderoleRow, read from the noderoles table under alias `t`: the one list of them. */
export const noderoleCols = (t: SQL) => sql`${t}.id, ${t}.node_id as "nodeId", ${t}.role_id as "roleId",
  ${t}.deployment_id as "deploymentId", ${t}.state, ${t}.cohort, ${t}.run_count as "runCount", ${t}.available,
  ${t}.run_token as "runToken"`;

/** The columns of a NoderoleSummary (the noderole as events carry it), aliases nr, r, n, d. */
export const summaryCols = sql`nr.id, nr.role_id as "roleId", r.name as role, nr.node_id as "nodeId", n.name as node,
  nr.deployment_id as "deploymentId", d.name as deployment, nr.state, nr.run_count as "runCount", nr.cohort`;

export async function findNoderole(q: StoreTx, id: number, lock: boolean): Promise<NoderoleRow | undefined> {
  return q.one<NoderoleRow>(sql`
      select ${noderoleCols(sql`nr`)} from inventory.noderoles nr where nr.id = ${id} ${lock ? sql`for update` : sql``}`);
}

export async function findNoderoleSummary(q: StoreTx, id: number): Promise<NoderoleSummary | undefined> {
  return q.one<NoderoleSummary>(sql`
      select ${summaryCols}
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      join inventory.nodes n on n.id = nr.node_id join inventory.deployments d on d.id = nr.deployment_id
      where nr.id = ${id}`);
}

/**
 * A per-row value inside a many-row update: `values[i]` belongs to noderole `ids[i]`. The rows are found
 * by key (`idIn`), which plans the same with or without table statistics.
 */
const perRow = (ids: number[], values: unknown[], type: 'text' | 'jsonb') =>
  ids.length === 1
    ? sql`${values[0]}::${sql.raw(type)}`
    : sql`(${sql.param(values)}::${sql.raw(type)}[])[array_position(${sql.param(ids)}::int[], nr.id)]`;

/** Further columns a state change sets in its own update (`setNoderoleStates`, `touchNoderole`). */
export type StateColumns = SQL;
export const noColumns: StateColumns = sql``;

/** Runs start: runlog cleared, `tokens[i]` the fencing token of noderole `ids[i]`. */
export const runStartColumns = (ids: number[], tokens: string[]): StateColumns =>
  sql`, runlog = '', run_token = ${perRow(ids, tokens, 'text')}`;

/** Runs succeeded: run count up, token cleared, each row's runlog, and its wall unless null. */
export const runSuccessColumns = (ids: number[], runlogs: string[], walls: (string | null)[]): StateColumns =>
  sql`, run_count = nr.run_count + 1, run_token = null,
        runlog = ${perRow(ids, runlogs, 'text')},
        wall = coalesce(${perRow(ids, walls, 'jsonb')}, nr.wall)`;

/** A run failed: its runlog, token cleared. */
export const runErrorColumns = (runlog: string): StateColumns => sql`, runlog = ${runlog}, run_token = null`;

/** The row may start a run: node alive and available, deployment committed, nothing else busy on the node. */
export const runnableGuard = sql`n.alive and n.available and d.state = 'committed' and nr.available
        and not exists (select 1 from inventory.noderoles o where o.node_id = nr.node_id and o.id <> nr.id and o.state in ('transition', 'error'))`;

/**
 * Writes `to` on the noderoles `ids` in one statement (with `extra` columns; with `guard`, aliases nr, r,
 * n, d, only where it holds). Answers each changed row's summary and its deployment's state.
 */
export async function setNoderoleStates(
  q: StoreTx,
  ids: number[],
  to: NoderoleState,
  extra: StateColumns,
  guard?: SQL,
): Promise<(NoderoleSummary & { deploymentState?: string })[]> {
  return q.rows<NoderoleSummary & { deploymentState?: string }>(sql`
    update inventory.noderoles nr set state = ${to}, version = nr.version + 1, updated_at = now() ${extra}
    from inventory.roles r, inventory.nodes n, inventory.deployments d
    where ${idIn(sql`nr.id`, ids)} and r.id = nr.role_id and n.id = nr.node_id and d.id = nr.deployment_id
      ${guard ? sql`and ${guard}` : sql``}
    returning ${summaryCols}, d.state as "deploymentState"`);
}

/** Same state: only `extra` columns change. */
export async function touchNoderole(q: StoreTx, id: number, extra: StateColumns): Promise<void> {
  await q.rows(sql`update inventory.noderoles set updated_at = now() ${extra} where id = ${id}`);
}

export async function commitNoderoleData(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`update inventory.noderoles set committed_data = proposed_data where id = ${id}`);
}

/** A finished run on a node that cannot take ACTIVE: run count up, runlog kept, token cleared. */
export async function settleNoderoleRun(q: StoreTx, id: number, runlog: string): Promise<void> {
  await q.rows(sql`update inventory.noderoles set updated_at = now(), run_count = run_count + 1, runlog = ${runlog},
                   run_token = null where id = ${id}`);
}

export async function clearRunToken(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`update inventory.noderoles set run_token = null where id = ${id}`);
}

export async function deleteNoderoleRow(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`delete from inventory.noderoles where id = ${id}`);
}

export async function noderoleVersion(q: StoreTx, id: number): Promise<number | undefined> {
  return (await q.one<{ version: number }>(sql`select version from inventory.noderoles where id = ${id}`))
    ?.version;
}

export async function noderoleProposedData<T>(q: StoreTx, id: number): Promise<T | undefined> {
  return (await q.one<{ p: T }>(sql`select proposed_data as p from inventory.noderoles where id = ${id}`))?.p;
}

/** Replaces the proposed data (a JSON text), version up. */
export async function setNoderoleProposedData(q: StoreTx, id: number, json: string): Promise<void> {
  await q.rows(
    sql`update inventory.noderoles set proposed_data = ${json}::jsonb, version = version + 1 where id = ${id}`,
  );
}

/** Merges into the proposed data (a JSON text) while the noderole is still proposed. */
export async function mergeProposedDataWhileProposed(q: StoreTx, id: number, json: string): Promise<void> {
  await q.rows(
    sql`update inventory.noderoles set proposed_data = proposed_data || ${json}::jsonb where id = ${id} and state = 'proposed'`,
  );
}

type Ids = { id: number }[];

/** A node's noderoles, cohort order; `proposedOnly` keeps the PROPOSED ones. */
export async function noderoleIdsOfNode(q: StoreTx, nodeId: number, proposedOnly: boolean): Promise<Ids> {
  return proposedOnly
    ? q.rows<{ id: number }>(
        sql`select id from inventory.noderoles where node_id = ${nodeId} and state = 'proposed' order by cohort, id`,
      )
    : q.rows<{ id: number }>(
        sql`select id from inventory.noderoles where node_id = ${nodeId} order by cohort, id`,
      );
}

/** A node's noderoles in the order they are deleted: cohort DESC. */
export async function noderoleIdsOfNodeForDelete(q: StoreTx, nodeId: number): Promise<Ids> {
  return q.rows<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${nodeId} order by cohort desc, id desc`,
  );
}

/** A deployment's PROPOSED noderoles, cohort order. */
export async function proposedNoderoleIdsOfDeployment(q: StoreTx, deploymentId: number): Promise<Ids> {
  return q.rows<{ id: number }>(
    sql`select id from inventory.noderoles where deployment_id = ${deploymentId} and state = 'proposed' order by cohort, id`,
  );
}

/** A deployment's noderoles, locked, in the order they are deleted: cohort DESC. */
export async function lockNoderoleIdsOfDeploymentForDelete(q: StoreTx, deploymentId: number): Promise<Ids> {
  return q.rows<{ id: number }>(
    sql`select id from inventory.noderoles where deployment_id = ${deploymentId} order by cohort desc, id desc for update`,
  );
}

/**
 * The noderoles a dead node's deactivation goes through: not PROPOSED, and not a destructive role's run
 * in flight, cohort order.
 */
export async function noderoleIdsToDeactivate(q: StoreTx, nodeId: number): Promise<Ids> {
  return q.rows<{ id: number }>(
    sql`select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
          where nr.node_id = ${nodeId} and nr.state <> 'proposed'
            and not (nr.state = 'transition' and 'destructive' = any(r.flags))
          order by nr.cohort, nr.id`,
  );
}

/** ACTIVE noderoles on the node, in committed deployments, whose role wants attrib `name`. */
export async function activeNoderolesWanting(q: StoreTx, nodeId: number, name: string): Promise<Ids> {
  return q.rows<{ id: number }>(sql`
      select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      join inventory.deployments d on d.id = nr.deployment_id
      where nr.node_id = ${nodeId} and ${name} = any(r.wants_attribs) and nr.state = 'active' and d.state = 'committed'
      order by nr.cohort, nr.id`);
}

/** ACTIVE noderoles of a role in a committed deployment, cohort order. */
export async function activeNoderolesOfRole(q: StoreTx, deploymentId: number, roleId: number): Promise<Ids> {
  return q.rows<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.deployments d on d.id = nr.deployment_id
    where nr.deployment_id = ${deploymentId} and nr.role_id = ${roleId} and nr.state = 'active' and d.state = 'committed'
    order by nr.cohort, nr.id`);
}

export async function countNoderolesOfRole(q: StoreTx, roleId: number): Promise<number> {
  const r = await q.one<{ n: number }>(
    sql`select count(*)::int as n from inventory.noderoles where role_id = ${roleId}`,
  );
  return r?.n ?? 0;
}
