import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import { bind } from './binding.js';
import { commit, deactivate, propose } from './transitions.js';
import type { GraphTx } from './tx.js';

export const hashSecret = (s: string) => createHash('sha256').update(s).digest('hex');

/** Resolves an id or a name (`admin` = the first admin node) to a node id. */
export async function nodeId(g: GraphTx, ref: number | string): Promise<number> {
  const r =
    typeof ref === 'number' || /^\d+$/.test(ref)
      ? await g.one<{ id: number }>(sql`select id from inventory.nodes where id = ${Number(ref)}`)
      : ref === 'admin'
        ? await g.one<{ id: number }>(sql`select id from inventory.nodes where admin order by id limit 1`)
        : await g.one<{ id: number }>(sql`select id from inventory.nodes where name = ${ref.toLowerCase()}`);
  if (!r) throw new NotFoundError(`no node ${ref}`, { field: 'node' });
  return r.id;
}

export async function deploymentId(g: GraphTx, ref: number | string): Promise<number> {
  const r =
    typeof ref === 'number' || /^\d+$/.test(ref)
      ? await g.one<{ id: number }>(sql`select id from inventory.deployments where id = ${Number(ref)}`)
      : await g.one<{ id: number }>(sql`select id from inventory.deployments where name = ${ref}`);
  if (!r) throw new NotFoundError(`no deployment ${ref}`, { field: 'deployment' });
  return r.id;
}

export interface NodeCreate {
  name: string;
  description?: string | undefined;
  admin?: boolean | undefined;
  system?: boolean | undefined;
  alive?: boolean | undefined;
  available?: boolean | undefined;
  bootenv?: string | undefined;
  deployment?: number | string | undefined;
  hint?: Record<string, unknown> | undefined;
  discovery?: Record<string, unknown> | undefined;
  sshHostKey?: string | null | undefined;
  mac?: string | undefined;
}

/** Creates a node; returns its id and its own credential (shown once, stored hashed). */
export async function createNode(g: GraphTx, n: NodeCreate): Promise<{ id: number; credential: string }> {
  const name = n.name.toLowerCase();
  if (await g.one(sql`select 1 from inventory.nodes where name = ${name}`)) {
    throw new ConflictError(`node ${name} already exists`, { rule: 'node names are unique' });
  }
  const dep = await deploymentId(g, n.deployment ?? 'system');
  // An admin node is a machine of the control plane itself: alive and available unless told otherwise.
  const adminDefault = n.admin === true;
  const credential = randomBytes(24).toString('base64url');
  const hint = { ...(n.hint ?? {}), ...(n.mac ? { admin_macs: [n.mac.toUpperCase()] } : {}) };
  const row = await g.one<{ id: number }>(sql`
    insert into inventory.nodes (name, description, admin, system, alive, available, bootenv, deployment_id, hint, discovery,
                                 ssh_host_key, credential_hash)
    values (${name}, ${n.description ?? ''}, ${n.admin ?? false}, ${n.system ?? false}, ${n.alive ?? adminDefault}, ${n.available ?? adminDefault},
            ${n.bootenv ?? 'sledgehammer'}, ${dep}, ${JSON.stringify(hint)}::jsonb, ${JSON.stringify(n.discovery ?? {})}::jsonb,
            ${n.sshHostKey ?? null}, ${hashSecret(credential)})
    returning id`);
  const id = row!.id;
  const node = await g.nodeSummary(id);
  g.log.info({ node: id, name, correlationId: g.lineage.correlationId }, 'node created');
  g.emit(inventoryEvents.nodeCreated, { node: node! });
  // Bootstrap roles go to every new admin node (reference §1.5).
  if (n.admin) {
    const boots = await g.rows<{ name: string }>(
      sql`select name from inventory.roles where 'bootstrap' = any(flags) order by name`,
    );
    for (const b of boots) await bind(g, b.name, id, dep);
  }
  return { id, credential };
}

export interface NodeUpdate {
  version?: number | undefined;
  name?: string | undefined;
  description?: string | undefined;
  alive?: boolean | undefined;
  available?: boolean | undefined;
  bootenv?: string | undefined;
  deployment?: number | string | undefined;
  sshHostKey?: string | null | undefined;
  hint?: Record<string, unknown> | undefined;
  discovery?: Record<string, unknown> | undefined;
}

/** Applies a node update; alive true→false deactivates its noderoles (reference §4.1). */
export async function updateNode(g: GraphTx, id: number, u: NodeUpdate, reason: string): Promise<string[]> {
  const cur = await g.one<{
    name: string;
    alive: boolean;
    available: boolean;
    bootenv: string;
    deploymentId: number;
    sshHostKey: string | null;
    description: string;
    version: number;
  }>(sql`
    select name, alive, available, bootenv, deployment_id as "deploymentId", ssh_host_key as "sshHostKey", description, version
    from inventory.nodes where id = ${id} for update`);
  if (!cur) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  if (u.version !== undefined && u.version !== cur.version) {
    throw new ConflictError(
      `node ${id} is at version ${cur.version}, not ${u.version}; re-read it and try again`,
      {
        rule: 'stale version',
      },
    );
  }
  const changed: string[] = [];
  const set: ReturnType<typeof sql>[] = [];
  const change = (field: string, column: string, value: unknown, old: unknown) => {
    if (value === undefined || value === old) return;
    changed.push(field);
    set.push(sql`${sql.raw(column)} = ${value}`);
  };
  if (u.name !== undefined) {
    const name = u.name.toLowerCase();
    if (name !== cur.name && (await g.one(sql`select 1 from inventory.nodes where name = ${name}`))) {
      throw new ConflictError(`node ${name} already exists`, { rule: 'node names are unique' });
    }
    change('name', 'name', name, cur.name);
  }
  change('description', 'description', u.description, cur.description);
  change('alive', 'alive', u.alive, cur.alive);
  change('available', 'available', u.available, cur.available);
  change('bootenv', 'bootenv', u.bootenv, cur.bootenv);
  change('sshHostKey', 'ssh_host_key', u.sshHostKey, cur.sshHostKey);
  if (u.deployment !== undefined)
    change('deployment', 'deployment_id', await deploymentId(g, u.deployment), cur.deploymentId);
  if (u.hint !== undefined) {
    changed.push('hint');
    set.push(sql`hint = hint || ${JSON.stringify(u.hint)}::jsonb`);
  }
  if (u.discovery !== undefined) {
    changed.push('discovery');
    set.push(sql`discovery = discovery || ${JSON.stringify(u.discovery)}::jsonb`);
  }
  if (changed.length === 0) return [];
  if (u.alive !== undefined && u.alive !== cur.alive) set.push(sql`alive_reason = ${reason}`);
  await g.rows(
    sql`update inventory.nodes set ${sql.join(set, sql`, `)}, version = version + 1, updated_at = now() where id = ${id}`,
  );
  g.log.info({ node: id, changed, reason, correlationId: g.lineage.correlationId }, 'node changed');
  if (changed.includes('deployment')) await moveNoderoles(g, id, cur.deploymentId);
  if (cur.alive && u.alive === false) {
    // A destructive role's run in flight keeps its TRANSITION and token: its jig may already have done
    // its work (an install reboots the node), so its result must still count when it comes (`settle`:
    // run count up, then block_or_todo), or the role would run a second time when the node is back.
    const nrs = await g.rows<{ id: number }>(
      sql`select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
          where nr.node_id = ${id} and nr.state <> 'proposed'
            and not (nr.state = 'transition' and 'destructive' = any(r.flags))
          order by nr.cohort, nr.id`,
    );
    for (const { id: nrId } of nrs) {
      const nr = await g.noderole(nrId);
      if (nr) await deactivate(g, nr, `node not alive: ${reason}`);
    }
  }
  await g.nodeChanged(id, changed, reason);
  return changed;
}

/**
 * The roles every admin node carries, bound in this order (reference §8 `crowbar-node.sh`, `finish`):
 * `crowbar-joined-node` first, so that its provides satisfy `crowbar-admin-node`'s requirement of
 * `crowbar-installed-node` (reference §1.16) and no OS-install role is ever bound to the admin node.
 */
export const adminRoles = ['crowbar-joined-node', 'crowbar-admin-node'] as const;

/**
 * The admin node is this machine: it joins (never installs), and its aliveness is the control plane's
 * own — nothing pings or logs in to it (reference §8: `crowbar nodes update <admin> {"alive":true}`).
 */
export async function bindAdminRoles(g: GraphTx, id: number): Promise<void> {
  const node = await g.one<{ deploymentId: number }>(
    sql`select deployment_id as "deploymentId" from inventory.nodes where id = ${id}`,
  );
  if (!node) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  const defined = await g.rows<{ name: string }>(
    sql`select name from inventory.roles where name = any(${sql.param([...adminRoles])}::text[])`,
  );
  for (const r of adminRoles) if (defined.some((d) => d.name === r)) await bind(g, r, id, node.deploymentId);
  await updateNode(g, id, { alive: true }, 'the admin node is this machine');
}

/**
 * A node moved to another deployment takes along each of its noderoles in the old deployment that is
 * PROPOSED, has never run, and whose descendants are all likewise PROPOSED, never run and in the old
 * deployment; the deployment roles are created in the new one (reference §1.7). The rest stay put.
 */
async function moveNoderoles(g: GraphTx, nodeId: number, from: number): Promise<void> {
  const to = (await g.one<{ d: number }>(
    sql`select deployment_id as d from inventory.nodes where id = ${nodeId}`,
  ))!.d;
  const movable = await g.rows<{ id: number; roleId: number }>(sql`
    select nr.id, nr.role_id as "roleId" from inventory.noderoles nr
    where nr.node_id = ${nodeId} and nr.deployment_id = ${from} and nr.state = 'proposed' and nr.run_count = 0
      and not exists (
        with recursive d(id) as (
          select child_id from inventory.noderole_edges where parent_id = nr.id
          union select e.child_id from inventory.noderole_edges e join d on e.parent_id = d.id)
        select 1 from d join inventory.noderoles c on c.id = d.id
        where c.state <> 'proposed' or c.run_count > 0 or c.deployment_id <> ${from})
    order by nr.cohort, nr.id for update of nr`);
  if (movable.length === 0) return;
  const ids = movable.map((m) => m.id);
  await g.rows(sql`
    insert into inventory.deployment_roles (deployment_id, role_id)
    select ${to}, unnest(${sql.param([...new Set(movable.map((m) => m.roleId))])}::int[])
    on conflict (deployment_id, role_id) do nothing`);
  await g.rows(sql`update inventory.noderoles set deployment_id = ${to}, version = version + 1, updated_at = now()
                   where id = any(${sql.param(ids)}::int[])`);
  g.log.info({ node: nodeId, from, to, noderoles: ids }, 'noderoles moved with their node');
}

/** Node commit: available, then every PROPOSED noderole committed in cohort order. */
export async function commitNode(g: GraphTx, id: number): Promise<void> {
  const disc = await g.rows<{ name: string }>(
    sql`select name from inventory.roles where 'discovery' = any(flags) order by name`,
  );
  const node = await g.one<{ deploymentId: number; admin: boolean; system: boolean }>(
    sql`select deployment_id as "deploymentId", admin, system from inventory.nodes where id = ${id}`,
  );
  if (!node) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  if (node.admin) await bindAdminRoles(g, id);
  else if (!node.system) {
    for (const d of disc) await bind(g, d.name, id, node.deploymentId);
  }
  await updateNode(g, id, { available: true }, 'node committed');
  // Service roles its noderoles need live on a deployment's phantom node (reference §1.7): still
  // proposed there, they would keep this node BLOCKED for ever, so they are committed first.
  const services = await g.rows<{ id: number }>(
    sql`select distinct p.id, p.cohort from inventory.noderole_edges e
        join inventory.noderoles c on c.id = e.child_id
        join inventory.noderoles p on p.id = e.parent_id
        join inventory.nodes pn on pn.id = p.node_id
        where c.node_id = ${id} and p.state = 'proposed' and pn.system
        order by p.cohort, p.id`,
  );
  for (const { id: nrId } of services) {
    const nr = await g.noderole(nrId);
    if (nr) await commit(g, nr, 'needed by a committed node');
  }
  const nrs = await g.rows<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${id} and state = 'proposed' order by cohort, id`,
  );
  for (const { id: nrId } of nrs) {
    const nr = await g.noderole(nrId);
    if (nr) await commit(g, nr, 'node committed');
  }
}

export async function proposeNode(g: GraphTx, id: number): Promise<void> {
  const nrs = await g.rows<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${id} order by cohort, id`,
  );
  for (const { id: nrId } of nrs) {
    const nr = await g.noderole(nrId);
    if (nr) await propose(g, nr, 'node proposed');
  }
}

/** Deletes a node and its noderoles (cohort DESC); the last admin node cannot be deleted. */
export async function deleteNode(g: GraphTx, id: number): Promise<void> {
  const node = await g.nodeSummary(id);
  if (!node) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  if (node.admin) {
    const admins = await g.one<{ n: number }>(
      sql`select count(*)::int as n from inventory.nodes where admin`,
    );
    if ((admins?.n ?? 0) <= 1)
      throw new ConflictError('the last admin node cannot be deleted', { rule: 'last admin node' });
  }
  const foreign = await g.one<{ n: number }>(sql`
    select count(*)::int as n from inventory.noderole_edges e join inventory.noderoles p on p.id = e.parent_id
    join inventory.noderoles c on c.id = e.child_id where p.node_id = ${id} and c.node_id <> ${id}`);
  if ((foreign?.n ?? 0) > 0) {
    throw new ConflictError(`node ${node.name} has noderoles other nodes depend on`, {
      rule: 'cross-node children',
    });
  }
  const nrs = await g.rows<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${id} order by cohort desc, id desc`,
  );
  for (const { id: nrId } of nrs) {
    const s = await g.noderoleSummary(nrId);
    await g.rows(sql`delete from inventory.noderoles where id = ${nrId}`);
    g.emit(inventoryEvents.noderoleDeleted, { noderole: s });
  }
  await g.rows(sql`delete from inventory.nodes where id = ${id}`);
  g.log.info({ node: id, name: node.name, correlationId: g.lineage.correlationId }, 'node deleted');
  g.emit(inventoryEvents.nodeDeleted, { node });
}

/** Replaces the node's credential with a new one, returned once (stored hashed like the first). */
export async function rotateCredential(g: GraphTx, id: number): Promise<string> {
  const credential = randomBytes(24).toString('base64url');
  await g.rows(sql`update inventory.nodes set credential_hash = ${hashSecret(credential)} where id = ${id}`);
  return credential;
}

export async function verifyCredential(
  g: GraphTx,
  ref: number | string,
  secret: string,
): Promise<number | null> {
  let id: number;
  try {
    id = await nodeId(g, ref);
  } catch {
    return null;
  }
  const r = await g.one<{ h: string | null }>(
    sql`select credential_hash as h from inventory.nodes where id = ${id}`,
  );
  return r?.h && r.h === hashSecret(secret) ? id : null;
}
