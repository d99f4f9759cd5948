import { sql } from 'drizzle-orm';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError } from '../../../shared/errors.js';
import { deploymentId } from './nodes.js';
import { getDeployment } from './queries.js';
import { commit } from './transitions.js';
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
  return d;
}

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

/** Commit: deployment-role data, then every PROPOSED noderole in cohort order (reference §2.2). */
export async function commitDeployment(g: GraphTx, id: number) {
  const d = await getDeployment(g, id);
  await g.rows(
    sql`update inventory.deployments set state = 'committed', updated_at = now() where id = ${id}`,
  );
  await g.rows(
    sql`update inventory.deployment_roles set committed_data = proposed_data, updated_at = now() where deployment_id = ${id}`,
  );
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

export async function deleteDeployment(g: GraphTx, id: number) {
  const d = await getDeployment(g, id);
  if (d.system)
    throw new ConflictError('the system deployment cannot be deleted', { rule: 'system deployment' });
  const busy = await g.one<{ c: number; n: number; r: number }>(sql`
    select (select count(*)::int from inventory.deployments where parent_id = ${id}) as c,
           (select count(*)::int from inventory.nodes where deployment_id = ${id}) as n,
           (select count(*)::int from inventory.noderoles where deployment_id = ${id}) as r`);
  if (busy && (busy.c || busy.n || busy.r)) {
    throw new ConflictError(
      `deployment ${d.name} still has ${busy.c} child deployments, ${busy.n} nodes and ${busy.r} noderoles`,
      {
        rule: 'only empty deployments can be deleted',
      },
    );
  }
  await g.rows(sql`delete from inventory.deployment_roles where deployment_id = ${id}`);
  await g.rows(sql`delete from inventory.deployments where id = ${id}`);
  g.emit(inventoryEvents.deploymentDeleted, { deployment: summary(d) });
}

export async function deploymentGraph(g: GraphTx, id: number) {
  await getDeployment(g, id);
  const vertices = await g.rows(sql`
    select nr.id, n.name as node, r.name as role, nr.state, nr.cohort from inventory.noderoles nr
    join inventory.nodes n on n.id = nr.node_id join inventory.roles r on r.id = nr.role_id
    where nr.deployment_id = ${id} order by nr.cohort, nr.id`);
  const edges = await g.rows<{ parent: number; child: number }>(sql`
    select e.parent_id as parent, e.child_id as child from inventory.noderole_edges e
    join inventory.noderoles c on c.id = e.child_id where c.deployment_id = ${id}`);
  return { vertices, edges };
}
