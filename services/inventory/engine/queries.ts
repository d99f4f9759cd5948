import { sql } from 'drizzle-orm';
import type { InventoryOp, InventoryOpAnswer } from '../../../shared/catalogue/index.js';
import { NotFoundError } from '../../../shared/errors.js';
import type { GraphTx } from './tx.js';

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

/** Read models for the API: noderoles, deployments, roles as the operator sees them. */
export const noderoleColumns = sql`
  nr.id, nr.node_id as "nodeId", n.name as node, nr.role_id as "roleId", r.name as role, nr.deployment_id as "deploymentId",
  d.name as deployment, nr.state, nr.cohort, nr.run_count as "runCount", nr.available, nr.runlog, nr.version,
  nr.created_at as "createdAt", nr.updated_at as "updatedAt"`;
const noderoleFrom = sql`from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id
  join inventory.roles r on r.id = nr.role_id join inventory.deployments d on d.id = nr.deployment_id`;

/** A page: one row more than asked for is read, so `next` is null exactly on the last page. */
export interface Page {
  limit: number;
}
function paged<R>(rows: R[], limit: number, cursorOf: (r: R) => string): { rows: R[]; next: string | null } {
  if (rows.length <= limit) return { rows, next: null };
  const page = rows.slice(0, limit);
  return { rows: page, next: cursorOf(page.at(-1)!) };
}

/** Noderoles in cohort order, then id (keyset on both: a cohort is set at binding and never changes). */
export async function listNoderoles(
  g: GraphTx,
  f: { nodeId?: number; deploymentId?: number; role?: string; state?: string },
  page: Page & { after?: { cohort: number; id: number } },
) {
  const where = [sql`true`];
  if (f.nodeId !== undefined) where.push(sql`nr.node_id = ${f.nodeId}`);
  if (f.deploymentId !== undefined) where.push(sql`nr.deployment_id = ${f.deploymentId}`);
  if (f.role !== undefined) where.push(sql`r.name = ${f.role}`);
  if (f.state !== undefined) where.push(sql`nr.state = ${f.state}`);
  if (page.after) where.push(sql`(nr.cohort, nr.id) > (${page.after.cohort}, ${page.after.id})`);
  const rows = await g.rows<RowOf<'noderole.list', 'noderoles'>>(
    sql`select ${noderoleColumns} ${noderoleFrom} where ${sql.join(where, sql` and `)}
        order by nr.cohort, nr.id limit ${page.limit + 1}`,
  );
  return paged(rows, page.limit, (r) => `${r.cohort}.${r.id}`);
}

export async function getNoderole(g: GraphTx, id: number) {
  const r = await g.one<NoderoleDetailRow>(sql`
    select ${noderoleColumns}, nr.proposed_data as "proposedData", nr.committed_data as "committedData",
      nr.sysdata, nr.wall ${noderoleFrom} where nr.id = ${id}`);
  if (!r) throw new NotFoundError(`no noderole ${id}`, { field: 'noderole' });
  return r;
}

export async function noderoleFor(g: GraphTx, nodeId: number, role: string): Promise<number> {
  const r = await g.one<{ id: number }>(
    sql`select nr.id ${noderoleFrom} where nr.node_id = ${nodeId} and r.name = ${role}`,
  );
  if (!r) throw new NotFoundError(`node ${nodeId} has no role ${role}`, { field: 'role' });
  return r.id;
}

export async function getNodeDetail(g: GraphTx, id: number) {
  const n = await g.one<NodeDetailRow>(sql`
    select n.id, n.name, n.description, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
           d.name as deployment, n.ssh_host_key as "sshHostKey", n.alive_reason as "aliveReason", n.quirks, n.version,
           n.hint, n.discovery, n.created_at as "createdAt", n.updated_at as "updatedAt",
           coalesce((select array_agg(nr.state) from inventory.noderoles nr where nr.node_id = n.id), '{}') as states
    from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id where n.id = ${id}`);
  if (!n) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  return n;
}

/** Nodes in id order (keyset on id). */
export async function listNodes(g: GraphTx, page: Page & { after?: number }) {
  const rows = await g.rows<NodeListRow>(sql`
    select n.id, n.name, n.description, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
           d.name as deployment,
           coalesce((select array_agg(nr.state) from inventory.noderoles nr where nr.node_id = n.id), '{}') as states
    from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id
    ${page.after !== undefined ? sql`where n.id > ${page.after}` : sql``} order by n.id limit ${page.limit + 1}`);
  return paged(rows, page.limit, (r) => String(r.id));
}

export async function getDeployment(g: GraphTx, id: number) {
  const d = await g.one<{
    id: number;
    name: string;
    parentId: number | null;
    state: 'proposed' | 'committed';
    system: boolean;
    description: string;
  }>(sql`
    select id, name, parent_id as "parentId", state, system, description from inventory.deployments where id = ${id}`);
  if (!d) throw new NotFoundError(`no deployment ${id}`, { field: 'deployment' });
  return d;
}

export async function listRoles(g: GraphTx) {
  return g.rows<InventoryOpAnswer<'role.get'>>(sql`
    select r.id, r.name, b.name as barclamp, r.description, r.jig, r.owner, r.flags, r.requires, r.wants_attribs as "wantsAttribs",
           r.provides, r.conflicts from inventory.roles r join inventory.barclamps b on b.id = r.barclamp_id order by r.name`);
}
