import { isDeepStrictEqual } from 'node:util';
import type { NoderoleState } from '../../../shared/catalogue/index.js';
import { attribMap } from '../store/attribs.js';
import { deploymentRoleDataOf } from '../store/deployments.js';
import { commitCandidates, proposedDataOf } from '../store/runs.js';
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
  const drs = await deploymentRoleDataOf<JsonObject>(g, deploymentId);
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
  const rows = await commitCandidates<Candidate>(g, deploymentId, changed);
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
    const osMap = (await attribMap(g, targetOsAttrib)) ?? 'crowbar/provisioner/target_os';
    const staged = await stageRunData(
      g,
      installs.map((c) => c.id),
    );
    // What the run will see once committed: its staged data, with the data the commit makes effective.
    const proposed = await proposedDataOf<JsonObject>(
      g,
      installs.map((c) => c.id),
    );
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
