import { sql } from 'drizzle-orm';
import { type NoderoleRow, noderoleCols } from './noderoles.js';
import { idIn, type StoreTx } from './query.js';

/** Queries of the annealer's side: runnable noderoles, locking them for runs, staging their data. */

/**
 * Runnable noderoles (reference §3.1): TODO, available, deployment committed, node alive and available,
 * and no noderole of the node in TRANSITION or ERROR. At most one per node, lowest cohort then id.
 */
export async function runnable(q: StoreTx, limit: number, excludeNodeIds: number[]) {
  return q.rows<{ noderoleId: number; nodeId: number; cohort: number }>(sql`
    select * from (
      select distinct on (nr.node_id) nr.id as "noderoleId", nr.node_id as "nodeId", nr.cohort
      from inventory.noderoles nr
      join inventory.nodes n on n.id = nr.node_id
      join inventory.deployments d on d.id = nr.deployment_id
      where nr.state = 'todo' and nr.available and d.state = 'committed' and n.alive and n.available
        and not (nr.node_id = any(${`{${excludeNodeIds.join(',')}}`}::int[]))
        -- One read of the busy nodes (a small partial index), then a hash lookup per waiting noderole.
        and nr.node_id not in (select o.node_id from inventory.noderoles o where o.state in ('transition', 'error'))
      order by nr.node_id, nr.cohort, nr.id) x
    order by cohort, "noderoleId" limit ${limit}`);
}

/** A noderole locked to start a run: what the run needs of its role and node. */
export type LockedForRun<H> = NoderoleRow & {
  alive: boolean;
  nodeAvailable: boolean;
  roleName: string;
  jig: string;
  owner: string | null;
  flags: string[];
  scripts: Record<string, string>;
  timeoutSeconds: number;
  nodeName: string;
  admin: boolean;
  sshHostKey: string | null;
  hint: H;
};

/** The noderoles and their nodes, all locked in id order. */
export const lockForRun = <H>(q: StoreTx, ids: number[]) =>
  q.rows<LockedForRun<H>>(sql`
    select ${noderoleCols(sql`nr`)}, n.alive, n.available as "nodeAvailable", r.name as "roleName", r.jig, r.owner,
           r.flags, r.scripts, r.timeout_seconds as "timeoutSeconds", n.name as "nodeName", n.admin,
           n.ssh_host_key as "sshHostKey", n.hint
    from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id join inventory.roles r on r.id = nr.role_id
    where ${idIn(sql`nr.id`, ids)} order by nr.id for update of nr, n`);

/** A noderole locked to take a run's result, with whether its node can still take an ACTIVE one. */
export type Finishing = NoderoleRow & { alive: boolean; nodeAvailable: boolean };

/** The noderoles locked in id order (their nodes not). */
export const lockForFinish = (q: StoreTx, ids: number[]) =>
  q.rows<Finishing>(sql`
    select ${noderoleCols(sql`nr`)}, n.alive, n.available as "nodeAvailable"
    from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id
    where ${idIn(sql`nr.id`, ids)} order by nr.id for update of nr`);

/** How many noderoles of committed deployments are in each state. */
export const stateCounts = (q: StoreTx) =>
  q.rows<{ state: string; n: number }>(sql`
    select nr.state, count(*)::int as n from inventory.noderoles nr join inventory.deployments d on d.id = nr.deployment_id
    where d.state = 'committed' group by nr.state`);

/**
 * One round trip for all of `ids`: each noderole with its node, the attrib defaults it sees, and every
 * ancestor's data from the most distant to the closest (`T` is their shape, see engine/stage.ts). The
 * `offset 0` subqueries stay per-row index lookups: a graph that grew since the last ANALYZE would
 * otherwise get hash joins over whole tables, once per level.
 */
export function stagedRows<T>(q: StoreTx, ids: number[]) {
  return q.rows<T & { root: number }>(sql`
    with recursive a(root, id, depth) as (
      select u.root, e.parent_id, 1 from unnest(${sql.param(ids)}::int[]) as u(root)
        cross join lateral (select parent_id from inventory.noderole_edges where child_id = u.root offset 0) e
      union select a.root, e.parent_id, a.depth + 1 from a
        cross join lateral (select parent_id from inventory.noderole_edges where child_id = a.id offset 0) e
        where a.depth < 64),
    self as (
      select nr.id as root, nr.role_id, r.wants_attribs,
             array(select (select p.role_id from inventory.noderoles p where p.id = e.parent_id)
                   from inventory.noderole_edges e where e.child_id = nr.id) as parent_roles,
             jsonb_build_object('template', r.template, 'wall', nr.wall, 'sysdata', nr.sysdata, 'committed', nr.committed_data,
               'drWall', dr.wall, 'drCommitted', dr.committed_data,
               'node', jsonb_build_object('id', n.id, 'name', n.name, 'admin', n.admin, 'hint', n.hint, 'discovery', case when cardinality(r.wants_attribs) > 0 then n.discovery else '{}'::jsonb end, 'quirks', to_jsonb(n.quirks), 'bootenv', n.bootenv)) as doc
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id join inventory.nodes n on n.id = nr.node_id
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = any(${sql.param(ids)}::int[]))
    select s.root, s.doc as self,
      (select coalesce(jsonb_agg(jsonb_build_object('map', at.map, 'value', at.default_value)), '[]'::jsonb)
         from inventory.attribs at
         where at.default_value is not null
           and (at.role_id = s.role_id or at.name = any(s.wants_attribs) or at.role_id = any(s.parent_roles))) as defaults,
      (select coalesce(jsonb_agg(at.map), '[]'::jsonb) from inventory.attribs at
         where at.role_id is null and at.name = any(s.wants_attribs)) as wanted,
      (select coalesce(jsonb_agg(d.doc order by x.depth desc, d.cohort, x.id), '[]'::jsonb)
         from (select id, max(depth) as depth from a where a.root = s.root group by id) x
         cross join lateral (
           select nr.cohort, jsonb_build_object('dw', coalesce(dr.wall, '{}'), 'dc', coalesce(dr.committed_data, '{}'),
                    'w', nr.wall, 's', nr.sysdata, 'c', nr.committed_data) as doc
           from inventory.noderoles nr
           left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
           where nr.id = x.id offset 0) d) as ancestors
    from self s`);
}

/**
 * A deployment's PROPOSED noderoles, and its ACTIVE ones of `changedRoleIds`, cohort order, each with
 * its node, its role's destructive flag and its parents' states (`T` is their shape, see engine/preview.ts).
 */
export function commitCandidates<T>(q: StoreTx, deploymentId: number, changedRoleIds: number[]) {
  return q.rows<T>(sql`
    select nr.id, nr.node_id as "nodeId", n.name as node, nr.role_id as "roleId", r.name as role, nr.cohort, nr.state,
           'destructive' = any(r.flags) as destructive, n.bootenv,
           coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'state', p.state) order by p.id)
             from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
             where e.child_id = nr.id), '[]'::jsonb) as parents
    from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id join inventory.nodes n on n.id = nr.node_id
    where nr.deployment_id = ${deploymentId}
      and (nr.state = 'proposed' or (nr.state = 'active' and nr.role_id = any(${sql.param(changedRoleIds)}::int[])))
    order by nr.cohort, nr.id`);
}

/** The proposed data of the noderoles and of their deployment roles. */
export const proposedDataOf = <T>(q: StoreTx, ids: number[]) =>
  q.rows<{ id: number; nr: T; dr: T | null }>(sql`
      select nr.id, nr.proposed_data as nr, dr.proposed_data as dr from inventory.noderoles nr
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = any(${sql.param(ids)}::int[])`);
