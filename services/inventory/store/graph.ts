import { sql } from 'drizzle-orm';
import type { NoderoleState } from '../../../shared/catalogue/index.js';
import { type NoderoleRow, noderoleCols } from './noderoles.js';
import { idIn, type StoreTx } from './query.js';

/** Queries on the noderole graph: `inventory.noderole_edges` and what is found by walking it. */

type Ids = { id: number }[];

/** The states of the noderole's parents, each share-locked, in id order. */
export async function shareLockParentStates(q: StoreTx, id: number): Promise<{ state: string }[]> {
  // FOR SHARE: a parent cannot change state until this transaction has acted on what it saw.
  return q.rows<{ state: string }>(sql`
    select p.state from inventory.noderole_edges e cross join lateral (
      select id, state from inventory.noderoles where id = e.parent_id for share) p
    where e.child_id = ${id} order by p.id`);
}

/** A child as `lockChildren` reads it: whether its parents are all ACTIVE, and whether it has TODO/ERROR children. */
export type Child = NoderoleRow & { ready: boolean; busyKids: boolean };

/**
 * Direct children of the noderoles `ids` in one of `states`, locked FOR UPDATE, cohort order (a child
 * of several appears once per parent). Each says whether all its parents are ACTIVE (share-locked) and
 * whether it has children in TODO or ERROR.
 */
export async function lockChildren(q: StoreTx, ids: number[], states: NoderoleState[]): Promise<Child[]> {
  return q.rows<Child>(sql`
    select c.*,
      (select coalesce(bool_and(p.state = 'active'), true) from inventory.noderole_edges pe cross join lateral (
         select state from inventory.noderoles where id = pe.parent_id for share) p where pe.child_id = c.id) as ready,
      -- offset 0 keeps this a lookup by key per edge: flattened into a join, PostgreSQL without table
      -- statistics (autovacuum off) hashed every TODO/ERROR noderole on each call.
      exists (select 1 from inventory.noderole_edges ke cross join lateral (
                select 1 from inventory.noderoles k where k.id = ke.child_id and k.state in ('todo', 'error') offset 0) k
              where ke.parent_id = c.id) as "busyKids"
    from inventory.noderole_edges e cross join lateral (
      select ${noderoleCols(sql`nr`)} from inventory.noderoles nr
      where nr.id = e.child_id and nr.state in ${sql.raw(`(${states.map((s) => `'${s}'`).join(',')})`)} for update) c
    where ${idIn(sql`e.parent_id`, ids)} order by c.cohort, c.id`);
}

/** Descendants of a failed noderole that its failure blocks (not PROPOSED, TRANSITION or BLOCKED), cohort order. */
export async function descendantsToBlock(q: StoreTx, id: number): Promise<Ids> {
  return q.rows<{ id: number }>(sql`
    with recursive d(id) as (
      select child_id from inventory.noderole_edges where parent_id = ${id}
      union select e.child_id from inventory.noderole_edges e join d on e.parent_id = d.id)
    select nr.id from d join inventory.noderoles nr on nr.id = d.id
    where nr.state not in ('proposed', 'transition', 'blocked') order by nr.cohort, nr.id`);
}

export interface Descendant {
  id: number;
  nodeId: number;
  state: string;
  runCount: number;
  cohort: number;
}

/** Every descendant of the noderole. */
export async function descendants(q: StoreTx, id: number): Promise<Descendant[]> {
  return q.rows<Descendant>(sql`
    with recursive d(id) as (select child_id from inventory.noderole_edges where parent_id = ${id}
      union select e.child_id from inventory.noderole_edges e join d on e.parent_id = d.id)
    select nr.id, nr.node_id as "nodeId", nr.state, nr.run_count as "runCount", nr.cohort from d join inventory.noderoles nr on nr.id = d.id`);
}

/** Adds a parent edge (and, for cluster-role parents, the same edge under every peer). */
export async function linkParent(q: StoreTx, parentId: number, childId: number): Promise<void> {
  await q.rows(
    sql`insert into inventory.noderole_edges (parent_id, child_id) values (${parentId}, ${childId}) on conflict do nothing`,
  );
  await q.rows(sql`
    insert into inventory.noderole_edges (parent_id, child_id)
    select peer.id, ${childId} from inventory.noderoles p join inventory.roles r on r.id = p.role_id
    -- Peers are looked for only under a cluster role (offset 0 keeps the filter first).
    cross join lateral (select q.id from inventory.noderoles q
      where q.role_id = p.role_id and q.deployment_id = p.deployment_id and q.id <> p.id offset 0) peer
    where p.id = ${parentId} and 'cluster' = any(r.flags)
    on conflict do nothing`);
}

/** A new instance of a cluster role adopts its peers' children. */
export async function adoptPeerChildren(
  q: StoreTx,
  id: number,
  roleId: number,
  deploymentId: number,
): Promise<void> {
  await q.rows(sql`
      insert into inventory.noderole_edges (parent_id, child_id)
      select ${id}, e.child_id from inventory.noderole_edges e join inventory.noderoles peer on peer.id = e.parent_id
      where peer.role_id = ${roleId} and peer.deployment_id = ${deploymentId} and peer.id <> ${id}
      on conflict do nothing`);
}

/**
 * The node's noderoles in deployment `from` that may move with it: PROPOSED, never run, and all their
 * descendants likewise and in `from`. Locked, cohort order.
 */
export async function lockMovableNoderoles(
  q: StoreTx,
  nodeId: number,
  from: number,
): Promise<{ id: number; roleId: number }[]> {
  return q.rows<{ id: number; roleId: number }>(sql`
    select nr.id, nr.role_id as "roleId" from inventory.noderoles nr
    where nr.node_id = ${nodeId} and nr.deployment_id = ${from} and nr.state = 'proposed' and nr.run_count = 0
      and not exists (
        with recursive d(id) as (
          select child_id from inventory.noderole_edges where parent_id = nr.id
          union select e.child_id from inventory.noderole_edges e join d on e.parent_id = d.id)
        select 1 from d join inventory.noderoles c on c.id = d.id
        where c.state <> 'proposed' or c.run_count > 0 or c.deployment_id <> ${from})
    order by nr.cohort, nr.id for update of nr`);
}

/** PROPOSED parents on system (phantom) nodes of the node's noderoles, cohort order. */
export async function proposedServiceParents(q: StoreTx, nodeId: number): Promise<Ids> {
  return q.rows<{ id: number }>(
    sql`select distinct p.id, p.cohort from inventory.noderole_edges e
        join inventory.noderoles c on c.id = e.child_id
        join inventory.noderoles p on p.id = e.parent_id
        join inventory.nodes pn on pn.id = p.node_id
        where c.node_id = ${nodeId} and p.state = 'proposed' and pn.system
        order by p.cohort, p.id`,
  );
}

/** How many noderoles on other nodes have a parent on this one. */
export async function countForeignChildrenOfNode(q: StoreTx, nodeId: number): Promise<number> {
  const r = await q.one<{ n: number }>(sql`
    select count(*)::int as n from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
    join inventory.noderoles c on c.id = e.child_id where p.node_id = ${nodeId} and c.node_id <> ${nodeId}`);
  return r?.n ?? 0;
}

/** How many noderoles in other deployments have a parent in this one. */
export async function countForeignChildrenOfDeployment(q: StoreTx, deploymentId: number): Promise<number> {
  const r = await q.one<{ n: number }>(sql`
    select count(*)::int as n from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
    join inventory.noderoles c on c.id = e.child_id where p.deployment_id = ${deploymentId} and c.deployment_id <> ${deploymentId}`);
  return r?.n ?? 0;
}

/** The edges whose child is in the deployment. */
export async function edgesOfDeployment(
  q: StoreTx,
  deploymentId: number,
): Promise<{ parent: number; child: number }[]> {
  return q.rows<{ parent: number; child: number }>(sql`
    select e.parent_id as parent, e.child_id as child from inventory.noderole_edges e
    join inventory.noderoles c on c.id = e.child_id where c.deployment_id = ${deploymentId}`);
}
