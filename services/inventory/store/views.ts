import { sql } from 'drizzle-orm';
import type { InventoryOp, InventoryOpAnswer } from '../../../shared/catalogue/index.js';
import type { StoreTx } from './query.js';

/** Read models for the operator API: nodes, noderoles and roles as the operator sees them. */

/** An op's answer without its index signature (the catalogue's answers are open objects). */
type Known<T> = { [K in keyof T as string extends K ? never : K]: T[K] };
/** The answer of an op that answers `{ [key]: rows }`: one row. */
export type RowOf<
  O extends InventoryOp,
  K extends keyof InventoryOpAnswer<O>,
> = InventoryOpAnswer<O>[K] extends (infer R)[] ? R : never;
/** A node as `node.get` and `node.list` answer it, before the API derives its `state` from `states`. */
export type NodeDetailRow = Omit<Known<InventoryOpAnswer<'node.get'>>, 'state'>;
export type NodeListRow = Omit<Known<RowOf<'node.list', 'nodes'>>, 'state'>;
type NoderoleDetailRow = InventoryOpAnswer<'noderole.get'>;

const noderoleColumns = sql`
  nr.id, nr.node_id as "nodeId", n.name as node, nr.role_id as "roleId", r.name as role, nr.deployment_id as "deploymentId",
  d.name as deployment, nr.state, nr.cohort, nr.run_count as "runCount", nr.available, nr.runlog, nr.version,
  nr.created_at as "createdAt", nr.updated_at as "updatedAt"`;
const noderoleFrom = sql`from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id
  join inventory.roles r on r.id = nr.role_id join inventory.deployments d on d.id = nr.deployment_id`;

export interface NoderoleFilter {
  nodeId?: number;
  deploymentId?: number;
  role?: string;
  state?: string;
}

/** Up to `limit` noderoles in cohort order, then id, after `after` (keyset on both). */
export async function noderoleRows(
  q: StoreTx,
  f: NoderoleFilter,
  limit: number,
  after?: { cohort: number; id: number },
) {
  const where = [sql`true`];
  if (f.nodeId !== undefined) where.push(sql`nr.node_id = ${f.nodeId}`);
  if (f.deploymentId !== undefined) where.push(sql`nr.deployment_id = ${f.deploymentId}`);
  if (f.role !== undefined) where.push(sql`r.name = ${f.role}`);
  if (f.state !== undefined) where.push(sql`nr.state = ${f.state}`);
  if (after) where.push(sql`(nr.cohort, nr.id) > (${after.cohort}, ${after.id})`);
  return q.rows<RowOf<'noderole.list', 'noderoles'>>(
    sql`select ${noderoleColumns} ${noderoleFrom} where ${sql.join(where, sql` and `)}
        order by nr.cohort, nr.id limit ${limit}`,
  );
}

export const noderoleDetail = (q: StoreTx, id: number) =>
  q.one<NoderoleDetailRow>(sql`
    select ${noderoleColumns}, nr.proposed_data as "proposedData", nr.committed_data as "committedData",
      nr.sysdata, nr.wall ${noderoleFrom} where nr.id = ${id}`);

/** The node's noderole of the role named. */
export async function noderoleOfNamedRole(
  q: StoreTx,
  nodeId: number,
  role: string,
): Promise<number | undefined> {
  return (
    await q.one<{ id: number }>(
      sql`select nr.id ${noderoleFrom} where nr.node_id = ${nodeId} and r.name = ${role}`,
    )
  )?.id;
}

export const nodeDetail = (q: StoreTx, id: number) =>
  q.one<NodeDetailRow>(sql`
    select n.id, n.name, n.description, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
           d.name as deployment, n.ssh_host_key as "sshHostKey", n.alive_reason as "aliveReason", n.quirks, n.version,
           n.hint, n.discovery, n.created_at as "createdAt", n.updated_at as "updatedAt",
           coalesce((select array_agg(nr.state) from inventory.noderoles nr where nr.node_id = n.id), '{}') as states
    from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id where n.id = ${id}`);

/** Up to `limit` nodes in id order after `after`. */
export const nodeRows = (q: StoreTx, limit: number, after?: number) =>
  q.rows<NodeListRow>(sql`
    select n.id, n.name, n.description, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
           d.name as deployment,
           coalesce((select array_agg(nr.state) from inventory.noderoles nr where nr.node_id = n.id), '{}') as states
    from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id
    ${after !== undefined ? sql`where n.id > ${after}` : sql``} order by n.id limit ${limit}`);

export const roleRows = (q: StoreTx) =>
  q.rows<InventoryOpAnswer<'role.get'>>(sql`
    select r.id, r.name, b.name as barclamp, r.description, r.jig, r.owner, r.flags, r.requires, r.wants_attribs as "wantsAttribs",
           r.provides, r.conflicts from inventory.roles r join inventory.barclamps b on b.id = r.barclamp_id order by r.name`);

/** The noderoles of a deployment as its graph shows them, cohort order. */
export const graphVertices = (q: StoreTx, deploymentId: number) =>
  q.rows<RowOf<'deployment.graph', 'vertices'>>(sql`
    select nr.id, n.name as node, r.name as role, nr.state, nr.cohort from inventory.noderoles nr
    join inventory.nodes n on n.id = nr.node_id join inventory.roles r on r.id = nr.role_id
    where nr.deployment_id = ${deploymentId} order by nr.cohort, nr.id`);
