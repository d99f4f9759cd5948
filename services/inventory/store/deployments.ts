import { sql } from 'drizzle-orm';
import type { InventoryOpAnswer } from '../../../shared/catalogue/index.js';
import type { StoreTx } from './query.js';
import type { RowOf } from './views.js';

/** Queries on `inventory.deployments` and `inventory.deployment_roles`. */

/** A type, not an interface: the catalogue's open answer types take it as it is. */
export type DeploymentRow = {
  id: number;
  name: string;
  parentId: number | null;
  state: 'proposed' | 'committed';
  system: boolean;
  description: string;
};

export const deploymentById = (q: StoreTx, id: number) =>
  q.one<{ id: number }>(sql`select id from inventory.deployments where id = ${id}`);
export const deploymentByName = (q: StoreTx, name: string) =>
  q.one<{ id: number }>(sql`select id from inventory.deployments where name = ${name}`);

export async function deploymentNameTaken(q: StoreTx, name: string): Promise<boolean> {
  return (await q.one(sql`select 1 from inventory.deployments where name = ${name}`)) !== undefined;
}

export async function insertDeployment(
  q: StoreTx,
  d: { name: string; parentId: number; description: string },
): Promise<number> {
  const r = await q.one<{ id: number }>(sql`
    insert into inventory.deployments (name, parent_id, description, state) values (${d.name}, ${d.parentId}, ${d.description}, 'proposed')
    returning id`);
  return r!.id;
}

/** The committed `system` deployment, unless it exists. */
export async function seedSystemDeployment(q: StoreTx): Promise<void> {
  await q.rows(sql`insert into inventory.deployments (name, state, system, description)
                     values ('system', 'committed', true, 'The system deployment: the admin node and cluster-wide services')
                     on conflict (name) do nothing`);
}

export const deploymentRow = (q: StoreTx, id: number) =>
  q.one<DeploymentRow>(sql`
    select id, name, parent_id as "parentId", state, system, description from inventory.deployments where id = ${id}`);

export const deploymentRows = (q: StoreTx) =>
  q.rows<InventoryOpAnswer<'deployment.get'>>(
    sql`select id, name, parent_id as "parentId", state, system, description from inventory.deployments order by id`,
  );

export async function setDeploymentState(
  q: StoreTx,
  id: number,
  state: 'proposed' | 'committed',
): Promise<void> {
  await q.rows(
    state === 'proposed'
      ? sql`update inventory.deployments set state = 'proposed', updated_at = now() where id = ${id}`
      : sql`update inventory.deployments set state = 'committed', updated_at = now() where id = ${id}`,
  );
}

/** The deployment and its ancestors, closest first. */
export async function deploymentChain(q: StoreTx, deploymentId: number): Promise<number[]> {
  const rows = await q.rows<{ id: number }>(sql`
    with recursive c(id, parent_id, depth) as (
      select id, parent_id, 0 from inventory.deployments where id = ${deploymentId}
      union all select d.id, d.parent_id, c.depth + 1 from inventory.deployments d join c on d.id = c.parent_id where c.depth < 64)
    select id from c order by depth`);
  return rows.map((r) => r.id);
}

export async function countChildDeployments(q: StoreTx, id: number): Promise<number> {
  const r = await q.one<{ n: number }>(
    sql`select count(*)::int as n from inventory.deployments where parent_id = ${id}`,
  );
  return r?.n ?? 0;
}

export async function deleteDeploymentRow(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`delete from inventory.deployments where id = ${id}`);
}

/** The deployment roles of `roleIds` in the deployment, unless they exist. */
export async function ensureDeploymentRoles(
  q: StoreTx,
  deploymentId: number,
  roleIds: number[],
): Promise<void> {
  if (roleIds.length === 1)
    await q.rows(sql`insert into inventory.deployment_roles (deployment_id, role_id) values (${deploymentId}, ${roleIds[0]})
                   on conflict (deployment_id, role_id) do nothing`);
  else
    await q.rows(sql`
    insert into inventory.deployment_roles (deployment_id, role_id)
    select ${deploymentId}, unnest(${sql.param(roleIds)}::int[])
    on conflict (deployment_id, role_id) do nothing`);
}

/** Creates the deployment role or merges `data` into its proposed data. */
export async function upsertDeploymentRole(
  q: StoreTx,
  deploymentId: number,
  roleId: number,
  data: Record<string, unknown>,
): Promise<number> {
  const r = await q.one<{ id: number }>(sql`
      insert into inventory.deployment_roles (deployment_id, role_id, proposed_data) values (${deploymentId}, ${roleId}, ${JSON.stringify(data)}::jsonb)
      on conflict (deployment_id, role_id) do update set proposed_data = inventory.deployment_roles.proposed_data || excluded.proposed_data
      returning id`);
  return r!.id;
}

/** committed := proposed for every deployment role of the deployment. */
export async function commitDeploymentRolesOf(q: StoreTx, deploymentId: number): Promise<void> {
  await q.rows(
    sql`update inventory.deployment_roles set committed_data = proposed_data, updated_at = now() where deployment_id = ${deploymentId}`,
  );
}

export async function deleteDeploymentRolesOf(q: StoreTx, deploymentId: number): Promise<void> {
  await q.rows(sql`delete from inventory.deployment_roles where deployment_id = ${deploymentId}`);
}

export async function deleteDeploymentRolesOfRole(q: StoreTx, roleId: number): Promise<void> {
  await q.rows(sql`delete from inventory.deployment_roles where role_id = ${roleId}`);
}

/** A deployment role with both its data, locked. */
export const lockDeploymentRole = <T>(q: StoreTx, id: number) =>
  q.one<{ deploymentId: number; roleId: number; p: T; c: T; role: string }>(sql`
    select dr.deployment_id as "deploymentId", dr.role_id as "roleId", dr.proposed_data as p, dr.committed_data as c, r.name as role
    from inventory.deployment_roles dr join inventory.roles r on r.id = dr.role_id where dr.id = ${id} for update of dr`);

export async function commitDeploymentRoleData(q: StoreTx, id: number): Promise<void> {
  await q.rows(
    sql`update inventory.deployment_roles set committed_data = proposed_data, updated_at = now() where id = ${id}`,
  );
}

/** proposed := committed; false when there is no such deployment role. */
export async function resetDeploymentRoleData(q: StoreTx, id: number): Promise<boolean> {
  const r =
    await q.rows(sql`update inventory.deployment_roles set proposed_data = committed_data, updated_at = now()
                             where id = ${id} returning id`);
  return r.length > 0;
}

export async function deploymentRoleProposed<T>(
  q: StoreTx,
  id: number,
  lock: boolean,
): Promise<T | undefined> {
  const r = lock
    ? await q.one<{ p: T }>(
        sql`select proposed_data as p from inventory.deployment_roles where id = ${id} for update`,
      )
    : await q.one<{ p: T }>(sql`select proposed_data as p from inventory.deployment_roles where id = ${id}`);
  return r?.p;
}

/** Replaces the proposed data (a JSON text); `touch` sets `updated_at` too. */
export async function setDeploymentRoleProposed(q: StoreTx, id: number, json: string, touch: boolean) {
  await q.rows(
    touch
      ? sql`update inventory.deployment_roles set proposed_data = ${json}::jsonb,
                   updated_at = now() where id = ${id}`
      : sql`update inventory.deployment_roles set proposed_data = ${json}::jsonb where id = ${id}`,
  );
}

/** Both data of every deployment role of the deployment. */
export const deploymentRoleDataOf = <T>(q: StoreTx, deploymentId: number) =>
  q.rows<{ roleId: number; p: T; c: T }>(sql`
    select role_id as "roleId", proposed_data as p, committed_data as c from inventory.deployment_roles
    where deployment_id = ${deploymentId}`);

export const deploymentRoleRows = (q: StoreTx, deploymentId?: number) =>
  q.rows<RowOf<'deployment_role.list', 'deployment_roles'>>(sql`
      select dr.id, dr.deployment_id as "deploymentId", d.name as deployment, r.name as role, dr.proposed_data as "proposedData",
             dr.committed_data as "committedData" from inventory.deployment_roles dr join inventory.roles r on r.id = dr.role_id
      join inventory.deployments d on d.id = dr.deployment_id
      ${deploymentId !== undefined ? sql`where dr.deployment_id = ${deploymentId}` : sql``} order by dr.id`);

export const deploymentRoleDetail = (q: StoreTx, id: number) =>
  q.one<InventoryOpAnswer<'deployment_role.get'>>(sql`
      select dr.id, dr.deployment_id as "deploymentId", r.name as role, dr.proposed_data as "proposedData",
                                dr.committed_data as "committedData", dr.wall from inventory.deployment_roles dr
                                join inventory.roles r on r.id = dr.role_id where dr.id = ${id}`);
