import { isDeepStrictEqual } from 'node:util';
import { sql } from 'drizzle-orm';
import type { NoderoleState } from '../../../shared/catalogue/index.js';
import { deepMerge, getPath, type JsonObject } from './data.js';
import { getDeployment } from './queries.js';
import { stageRunData } from './stage.js';
import type { GraphTx } from './tx.js';

/** The role whose TODO changes a node's bootenv (the provisioner's on_todo hook, reference §6.5). */
const installRole = 'provisioner-os-install';
const targetOsAttrib = 'provisioner-target_os';
const defaultTargetOs = 'debian-12';

interface Candidate {
  id: number;
  nodeId: number;
  node: string;
  roleId: number;
  role: string;
  cohort: number;
  state: NoderoleState;
  destructive: boolean;
  bootenv: string;
  parents: { id: number; state: NoderoleState }[];
}

/**
 * Deployment roles of `deploymentId` whose proposed data differs from their committed data: committing
 * them re-runs the ACTIVE noderoles of that role in the deployment (reference §1.8).
 */
export async function changedDeploymentRoles(g: GraphTx, deploymentId: number): Promise<number[]> {
  const drs = await g.rows<{ roleId: number; p: JsonObject; c: JsonObject }>(sql`
    select role_id as "roleId", proposed_data as p, committed_data as c from inventory.deployment_roles
    where deployment_id = ${deploymentId}`);
  return drs.filter((d) => !isDeepStrictEqual(d.p, d.c)).map((d) => d.roleId);
}

/**
 * What committing the deployment does to its noderoles, as `commitDeployment` does it: first the
 * deployment-role data (ACTIVE users of changed data are poked, cohort order), then every PROPOSED
 * noderole in cohort order. A noderole goes TODO when every parent is ACTIVE and stays so: a parent
 * committed or poked in the same commit is TODO by then, so its children go BLOCKED.
 */
export async function commitPlan(
  g: GraphTx,
  deploymentId: number,
): Promise<{ todo: Candidate[]; poked: Candidate[] }> {
  const changed = await changedDeploymentRoles(g, deploymentId);
  const rows = await g.rows<Candidate>(sql`
    select nr.id, nr.node_id as "nodeId", n.name as node, nr.role_id as "roleId", r.name as role, nr.cohort, nr.state,
           'destructive' = any(r.flags) as destructive, n.bootenv,
           coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'state', p.state) order by p.id)
             from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
             where e.child_id = nr.id), '[]'::jsonb) as parents
    from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id join inventory.nodes n on n.id = nr.node_id
    where nr.deployment_id = ${deploymentId}
      and (nr.state = 'proposed' or (nr.state = 'active' and nr.role_id = any(${sql.param(changed)}::int[])))
    order by nr.cohort, nr.id`);
  const poked = rows.filter((r) => r.state === 'active');
  const moving = new Set(rows.map((r) => r.id));
  const ready = (c: Candidate) => c.parents.every((p) => p.state === 'active' && !moving.has(p.id));
  return { todo: rows.filter(ready), poked };
}

/**
 * The commit preview (`GET deployments/:id/preview`): the noderoles that would go TODO, in cohort order,
 * destructive ones flagged, the nodes they touch, and the nodes whose bootenv changes — a TODO of
 * `provisioner-os-install` sets `<provisioner-target_os>-install` (an install means a reboot).
 */
export async function previewCommit(g: GraphTx, deploymentId: number) {
  const d = await getDeployment(g, deploymentId);
  const { todo } = await commitPlan(g, deploymentId);
  const nodes = new Map<number, string>();
  for (const c of todo) nodes.set(c.nodeId, c.node);
  const installs = todo.filter((c) => c.role === installRole);
  const bootenvChanges: { nodeId: number; node: string; from: string; to: string }[] = [];
  if (installs.length > 0) {
    const osMap =
      (await g.one<{ map: string }>(sql`select map from inventory.attribs where name = ${targetOsAttrib}`))
        ?.map ?? 'crowbar/provisioner/target_os';
    const staged = await stageRunData(
      g,
      installs.map((c) => c.id),
    );
    // What the run will see once committed: its staged data, with the data the commit makes effective.
    const proposed = await g.rows<{ id: number; nr: JsonObject; dr: JsonObject | null }>(sql`
      select nr.id, nr.proposed_data as nr, dr.proposed_data as dr from inventory.noderoles nr
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = any(${sql.param(installs.map((c) => c.id))}::int[])`);
    const byId = new Map(proposed.map((p) => [p.id, p]));
    const seen = new Set<number>();
    for (const c of installs) {
      if (seen.has(c.nodeId)) continue;
      seen.add(c.nodeId);
      const p = byId.get(c.id);
      const data = deepMerge(staged.get(c.id), p?.dr ?? {}, c.state === 'proposed' ? p?.nr : {});
      const os = getPath(data, osMap);
      const to = `${typeof os === 'string' && os ? os : defaultTargetOs}-install`;
      if (to !== c.bootenv) bootenvChanges.push({ nodeId: c.nodeId, node: c.node, from: c.bootenv, to });
    }
  }
  return {
    deployment: { id: d.id, name: d.name, state: d.state },
    noderoles: todo.map((c) => ({
      id: c.id,
      nodeId: c.nodeId,
      node: c.node,
      roleId: c.roleId,
      role: c.role,
      cohort: c.cohort,
      destructive: c.destructive,
      from: c.state,
      to: 'todo' as const,
    })),
    nodes: [...nodes].map(([id, name]) => ({ id, name })),
    bootenvChanges,
  };
}
