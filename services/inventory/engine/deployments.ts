import { isDeepStrictEqual } from 'node:util';
import { sql } from 'drizzle-orm';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import type { JsonObject } from './data.js';
import { createNode, deleteNode, deploymentId } from './nodes.js';
import { commitPlan } from './preview.js';
import { getDeployment, type RowOf } from './queries.js';
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
  if (await g.one(sql`select 1 from inventory.deployments where name = ${a.name}`)) {
    throw new ConflictError(`deployment ${a.name} already exists`, { rule: 'deployment names are unique' });
  }
  const parent = await deploymentId(g, a.parent ?? 'system');
  const r = await g.one<{ id: number }>(sql`
    insert into inventory.deployments (name, parent_id, description, state) values (${a.name}, ${parent}, ${a.description ?? ''}, 'proposed')
    returning id`);
  const d = await getDeployment(g, r!.id);
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
  await g.rows(sql`update inventory.deployments set state = 'proposed', updated_at = now() where id = ${id}`);
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
  await g.rows(
    sql`update inventory.deployments set state = 'committed', updated_at = now() where id = ${id}`,
  );
  await g.rows(
    sql`update inventory.deployment_roles set committed_data = proposed_data, updated_at = now() where deployment_id = ${id}`,
  );
  for (const p of poked) {
    const nr = await g.noderole(p.id);
    if (nr?.state === 'active') await blockOrTodo(g, nr, `deployment role data of ${p.role} changed`);
  }
  const nrs = await g.rows<{ id: number }>(
    sql`select id from inventory.noderoles where deployment_id = ${id} and state = 'proposed' order by cohort, id`,
  );
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
  const kids = await g.one<{ n: number }>(
    sql`select count(*)::int as n from inventory.deployments where parent_id = ${id}`,
  );
  if (kids?.n) {
    throw new ConflictError(`deployment ${d.name} has ${kids.n} child deployments; delete them first`, {
      rule: 'deployments with children cannot be deleted',
    });
  }
  // Noderoles of this deployment that others depend on would leave those children without a parent.
  const foreign = await g.one<{ n: number }>(sql`
    select count(*)::int as n from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
    join inventory.noderoles c on c.id = e.child_id where p.deployment_id = ${id} and c.deployment_id <> ${id}`);
  if (foreign?.n) {
    throw new ConflictError(
      `deployment ${d.name} has noderoles that ${foreign.n} noderoles elsewhere depend on`,
      {
        rule: 'noderoles other deployments depend on',
      },
    );
  }
  const nrs = await g.rows<{ id: number }>(
    sql`select id from inventory.noderoles where deployment_id = ${id} order by cohort desc, id desc for update`,
  );
  const touched = new Set<number>();
  for (const { id: nrId } of nrs) {
    const s = await g.noderoleSummary(nrId);
    touched.add(s.nodeId);
    await g.rows(sql`delete from inventory.noderoles where id = ${nrId}`);
    g.emit(inventoryEvents.noderoleDeleted, { noderole: s });
  }
  await g.rows(sql`delete from inventory.deployment_roles where deployment_id = ${id}`);
  const phantoms = await g.rows<{ id: number }>(
    sql`select id from inventory.nodes where deployment_id = ${id} and system`,
  );
  for (const p of phantoms) {
    touched.delete(p.id);
    await deleteNode(g, p.id);
  }
  const moved = await g.rows<{ id: number }>(sql`
    update inventory.nodes set deployment_id = ${d.parentId}, version = version + 1, updated_at = now()
    where deployment_id = ${id} returning id`);
  for (const m of moved) {
    touched.delete(m.id);
    await g.nodeChanged(m.id, ['deployment'], `deployment ${d.name} deleted`);
  }
  for (const n of touched) await g.nodeChanged(n, ['roles'], `deployment ${d.name} deleted`);
  await g.rows(sql`delete from inventory.deployments where id = ${id}`);
  g.log.info(
    { deployment: id, name: d.name, noderoles: nrs.length, nodesMoved: moved.length },
    'deployment deleted',
  );
  g.emit(inventoryEvents.deploymentDeleted, { deployment: summary(d) });
}

export async function deploymentGraph(g: GraphTx, id: number) {
  await getDeployment(g, id);
  const vertices = await g.rows<RowOf<'deployment.graph', 'vertices'>>(sql`
    select nr.id, n.name as node, r.name as role, nr.state, nr.cohort from inventory.noderoles nr
    join inventory.nodes n on n.id = nr.node_id join inventory.roles r on r.id = nr.role_id
    where nr.deployment_id = ${id} order by nr.cohort, nr.id`);
  const edges = await g.rows<{ parent: number; child: number }>(sql`
    select e.parent_id as parent, e.child_id as child from inventory.noderole_edges e
    join inventory.noderoles c on c.id = e.child_id where c.deployment_id = ${id}`);
  return { vertices, edges };
}

/**
 * Deployment-role commit (reference §1.8): if the proposed data differs from the committed data, the
 * ACTIVE noderoles of that role in the deployment are poked (cohort order) so they run with it; then
 * committed := proposed.
 */
export async function commitDeploymentRole(g: GraphTx, drId: number): Promise<void> {
  const dr = await g.one<{
    deploymentId: number;
    roleId: number;
    p: JsonObject;
    c: JsonObject;
    role: string;
  }>(sql`
    select dr.deployment_id as "deploymentId", dr.role_id as "roleId", dr.proposed_data as p, dr.committed_data as c, r.name as role
    from inventory.deployment_roles dr join inventory.roles r on r.id = dr.role_id where dr.id = ${drId} for update of dr`);
  if (!dr) throw new NotFoundError(`no deployment role ${drId}`, { field: 'deployment_role' });
  await g.rows(
    sql`update inventory.deployment_roles set committed_data = proposed_data, updated_at = now() where id = ${drId}`,
  );
  if (isDeepStrictEqual(dr.p, dr.c)) return;
  const users = await g.rows<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.deployments d on d.id = nr.deployment_id
    where nr.deployment_id = ${dr.deploymentId} and nr.role_id = ${dr.roleId} and nr.state = 'active' and d.state = 'committed'
    order by nr.cohort, nr.id`);
  for (const u of users) {
    const nr = await g.noderole(u.id);
    if (nr?.state === 'active') await blockOrTodo(g, nr, `deployment role data of ${dr.role} changed`);
  }
}

/** Deployment-role propose (reference §1.8): proposed data back to the committed data. */
export async function proposeDeploymentRole(g: GraphTx, drId: number): Promise<void> {
  const r =
    await g.rows(sql`update inventory.deployment_roles set proposed_data = committed_data, updated_at = now()
                             where id = ${drId} returning id`);
  if (r.length === 0) throw new NotFoundError(`no deployment role ${drId}`, { field: 'deployment_role' });
}
