import { isDeepStrictEqual } from 'node:util';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import {
  commitDeploymentRoleData,
  commitDeploymentRolesOf,
  countChildDeployments,
  deleteDeploymentRolesOf,
  deleteDeploymentRow,
  deploymentNameTaken,
  insertDeployment,
  lockDeploymentRole,
  resetDeploymentRoleData,
  setDeploymentState,
} from '../store/deployments.js';
import { countForeignChildrenOfDeployment, edgesOfDeployment } from '../store/graph.js';
import {
  activeNoderolesOfRole,
  deleteNoderoleRow,
  lockNoderoleIdsOfDeploymentForDelete,
  proposedNoderoleIdsOfDeployment,
} from '../store/noderoles.js';
import { moveNodesOfDeployment, phantomsOf } from '../store/nodes.js';
import { graphVertices } from '../store/views.js';
import type { JsonObject } from './data.js';
import { createNode, deleteNode, deploymentId } from './nodes.js';
import { commitPlan } from './preview.js';
import { getDeployment } from './queries.js';
import { blockOrTodo, commit } from './transitions.js';
import type { GraphTx } from './tx.js';

const summary = (d: Awaited<ReturnType<typeof getDeployment>>) => ({
  id: d.id,
  name: d.name,
  parentId: d.parentId,
  state: d.state,
  system: d.system,
});

export async function createDeployment(
  g: GraphTx,
  a: { name: string; parent?: number | string | undefined; description?: string | undefined },
) {
  if (await deploymentNameTaken(g, a.name)) {
    throw new ConflictError(`deployment ${a.name} already exists`, { rule: 'deployment names are unique' });
  }
  const parent = await deploymentId(g, a.parent ?? 'system');
  const id = await insertDeployment(g, { name: a.name, parentId: parent, description: a.description ?? '' });
  const d = await getDeployment(g, id);
  g.log.info(
    { deployment: d.id, name: d.name, parent, correlationId: g.lineage.correlationId },
    'deployment created',
  );
  g.emit(inventoryEvents.deploymentCreated, { deployment: summary(d) });
  // Its phantom node hosts the deployment's service roles (reference §1.7).
  await createNode(g, {
    name: phantomName(d.name, d.id),
    system: true,
    alive: true,
    available: true,
    bootenv: 'local',
    deployment: d.id,
    description: `Phantom node of deployment ${d.name}: home of its service roles`,
  });
  return d;
}

/** `<deployment>-phantom.internal.local`; a name too long for one DNS label uses the id instead. */
export const phantomName = (name: string, id: number) =>
  `${name.length <= 55 ? name : `d${id}`}-phantom.internal.local`;

export async function proposeDeployment(g: GraphTx, id: number) {
  const d = await getDeployment(g, id);
  if (d.system)
    throw new ConflictError('the system deployment is never proposed', { rule: 'system deployment' });
  if (d.state === 'proposed') return d;
  await setDeploymentState(g, id, 'proposed');
  g.log.info({ deployment: id, from: d.state, to: 'proposed' }, 'deployment state changed');
  g.emit(inventoryEvents.deploymentProposed, { deployment: { ...summary(d), state: 'proposed' } });
  return { ...d, state: 'proposed' as const };
}

/**
 * Commit (reference §1.7, §1.8, §2.2): deployment-role data first — the ACTIVE noderoles of a role whose
 * data changed are poked (block_or_todo, so they run again with it), cohort order — then every PROPOSED
 * noderole in cohort order. `previewCommit` answers what this will do without doing it.
 */
export async function commitDeployment(g: GraphTx, id: number) {
  const d = await getDeployment(g, id);
  const { poked } = await commitPlan(g, id);
  await setDeploymentState(g, id, 'committed');
  await commitDeploymentRolesOf(g, id);
  for (const p of poked) {
    const nr = await g.noderole(p.id);
    if (nr?.state === 'active') await blockOrTodo(g, nr, `deployment role data of ${p.role} changed`);
  }
  const nrs = await proposedNoderoleIdsOfDeployment(g, id);
  for (const { id: nrId } of nrs) {
    const nr = await g.noderole(nrId);
    if (nr) await commit(g, nr, `deployment ${d.name} committed`);
  }
  g.log.info(
    { deployment: id, from: d.state, to: 'committed', noderoles: nrs.length },
    'deployment state changed',
  );
  g.emit(inventoryEvents.deploymentCommitted, { deployment: { ...summary(d), state: 'committed' } });
  return { ...d, state: 'committed' as const };
}

/**
 * Delete (reference §1.7): refused for the system deployment and for one with child deployments;
 * otherwise its noderoles are destroyed (cohort DESC), then its deployment roles and phantom node, and
 * its nodes move to the parent deployment.
 */
export async function deleteDeployment(g: GraphTx, id: number) {
  const d = await getDeployment(g, id);
  if (d.system)
    throw new ConflictError('the system deployment cannot be deleted', { rule: 'system deployment' });
  const kids = await countChildDeployments(g, id);
  if (kids) {
    throw new ConflictError(`deployment ${d.name} has ${kids} child deployments; delete them first`, {
      rule: 'deployments with children cannot be deleted',
    });
  }
  // Noderoles of this deployment that others depend on would leave those children without a parent.
  const foreign = await countForeignChildrenOfDeployment(g, id);
  if (foreign) {
    throw new ConflictError(
      `deployment ${d.name} has noderoles that ${foreign} noderoles elsewhere depend on`,
      {
        rule: 'noderoles other deployments depend on',
      },
    );
  }
  const nrs = await lockNoderoleIdsOfDeploymentForDelete(g, id);
  const touched = new Set<number>();
  for (const { id: nrId } of nrs) {
    const s = await g.noderoleSummary(nrId);
    touched.add(s.nodeId);
    await deleteNoderoleRow(g, nrId);
    g.emit(inventoryEvents.noderoleDeleted, { noderole: s });
  }
  await deleteDeploymentRolesOf(g, id);
  const phantoms = await phantomsOf(g, id);
  for (const p of phantoms) {
    touched.delete(p.id);
    await deleteNode(g, p.id);
  }
  const moved = await moveNodesOfDeployment(g, id, d.parentId);
  for (const m of moved) {
    touched.delete(m.id);
    await g.nodeChanged(m.id, ['deployment'], `deployment ${d.name} deleted`);
  }
  for (const n of touched) await g.nodeChanged(n, ['roles'], `deployment ${d.name} deleted`);
  await deleteDeploymentRow(g, id);
  g.log.info(
    { deployment: id, name: d.name, noderoles: nrs.length, nodesMoved: moved.length },
    'deployment deleted',
  );
  g.emit(inventoryEvents.deploymentDeleted, { deployment: summary(d) });
}

export async function deploymentGraph(g: GraphTx, id: number) {
  await getDeployment(g, id);
  const vertices = await graphVertices(g, id);
  const edges = await edgesOfDeployment(g, id);
  return { vertices, edges };
}

/**
 * Deployment-role commit (reference §1.8): if the proposed data differs from the committed data, the
 * ACTIVE noderoles of that role in the deployment are poked (cohort order) so they run with it; then
 * committed := proposed.
 */
export async function commitDeploymentRole(g: GraphTx, drId: number): Promise<void> {
  const dr = await lockDeploymentRole<JsonObject>(g, drId);
  if (!dr) throw new NotFoundError(`no deployment role ${drId}`, { field: 'deployment_role' });
  await commitDeploymentRoleData(g, drId);
  if (isDeepStrictEqual(dr.p, dr.c)) return;
  const users = await activeNoderolesOfRole(g, dr.deploymentId, dr.roleId);
  for (const u of users) {
    const nr = await g.noderole(u.id);
    if (nr?.state === 'active') await blockOrTodo(g, nr, `deployment role data of ${dr.role} changed`);
  }
}

/** Deployment-role propose (reference §1.8): proposed data back to the committed data. */
export async function proposeDeploymentRole(g: GraphTx, drId: number): Promise<void> {
  if (!(await resetDeploymentRoleData(g, drId)))
    throw new NotFoundError(`no deployment role ${drId}`, { field: 'deployment_role' });
}
