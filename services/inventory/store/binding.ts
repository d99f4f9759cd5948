import { sql } from 'drizzle-orm';
import { idIn, type StoreTx } from './query.js';

/** Queries binding uses to find and create noderoles. */

/** The node's noderole of the role, by role id. */
export async function noderoleOfRole(
  q: StoreTx,
  nodeId: number,
  roleId: number,
): Promise<number | undefined> {
  return (
    await q.one<{ id: number }>(
      sql`select id from inventory.noderoles where node_id = ${nodeId} and role_id = ${roleId}`,
    )
  )?.id;
}

/** The node's noderole of role `role`, else of a role providing it. */
export async function providerOnNode(q: StoreTx, nodeId: number, role: string): Promise<number | undefined> {
  const r = await q.one<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.node_id = ${nodeId} and (r.name = ${role} or ${role} = any(r.provides))
    order by (r.name = ${role}) desc, nr.id limit 1`);
  return r?.id;
}

/** The deployment's noderole of role `role`, else of a role providing it. */
export async function providerInDeployment(
  q: StoreTx,
  deploymentId: number,
  role: string,
): Promise<number | undefined> {
  const r = await q.one<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.deployment_id = ${deploymentId} and (r.name = ${role} or ${role} = any(r.provides))
    order by (r.name = ${role}) desc, nr.id limit 1`);
  return r?.id;
}

/** The roles already on the node, with what they conflict with and provide. */
export const rolesOnNode = (q: StoreTx, nodeId: number) =>
  q.rows<{ name: string; conflicts: string[]; provides: string[] }>(sql`
    select r.name, r.conflicts, r.provides from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.node_id = ${nodeId}`);

/** One more than the highest cohort of the noderoles `ids`. */
export async function nextCohort(q: StoreTx, ids: number[]): Promise<number | undefined> {
  return (
    await q.one<{ c: number }>(
      sql`select max(cohort)::int + 1 as c from inventory.noderoles where ${idIn(sql`id`, ids)}`,
    )
  )?.c;
}

export async function insertNoderole(
  q: StoreTx,
  n: { nodeId: number; roleId: number; deploymentId: number; cohort: number },
): Promise<number> {
  const created = await q.one<{ id: number }>(sql`
    insert into inventory.noderoles (node_id, role_id, deployment_id, state, cohort)
    values (${n.nodeId}, ${n.roleId}, ${n.deploymentId}, 'proposed', ${n.cohort}) returning id`);
  return created!.id;
}

/** Moves noderoles to another deployment, version up. */
export async function moveNoderoles(q: StoreTx, ids: number[], deploymentId: number): Promise<void> {
  await q.rows(sql`update inventory.noderoles set deployment_id = ${deploymentId}, version = version + 1, updated_at = now()
                   where id = any(${sql.param(ids)}::int[])`);
}
