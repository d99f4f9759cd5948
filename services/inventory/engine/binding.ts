import { sql } from 'drizzle-orm';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, ValidationError } from '../../../shared/errors.js';
import { type GraphTx, idIn } from './tx.js';

export interface RoleRow {
  id: number;
  name: string;
  jig: string;
  owner: string | null;
  flags: string[];
  requires: string[];
  wantsAttribs: string[];
  provides: string[];
  conflicts: string[];
}

export async function roleByName(g: GraphTx, name: string): Promise<RoleRow> {
  const r = await g.one<RoleRow>(sql`
    select id, name, jig, owner, flags, requires, wants_attribs as "wantsAttribs", provides, conflicts
    from inventory.roles where name = ${name}`);
  if (!r) throw new NotFoundError(`no role ${name}`, { field: 'role' });
  return r;
}

/** The deployment and its ancestors, closest first. */
export async function deploymentChain(g: GraphTx, deploymentId: number): Promise<number[]> {
  const rows = await g.rows<{ id: number }>(sql`
    with recursive c(id, parent_id, depth) as (
      select id, parent_id, 0 from inventory.deployments where id = ${deploymentId}
      union all select d.id, d.parent_id, c.depth + 1 from inventory.deployments d join c on d.id = c.parent_id where c.depth < 64)
    select id from c order by depth`);
  return rows.map((r) => r.id);
}

async function findOnNode(g: GraphTx, nodeId: number, role: string): Promise<number | undefined> {
  const r = await g.one<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.node_id = ${nodeId} and (r.name = ${role} or ${role} = any(r.provides))
    order by (r.name = ${role}) desc, nr.id limit 1`);
  return r?.id;
}

async function findInDeployment(g: GraphTx, deploymentId: number, role: string): Promise<number | undefined> {
  const r = await g.one<{ id: number }>(sql`
    select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.deployment_id = ${deploymentId} and (r.name = ${role} or ${role} = any(r.provides))
    order by (r.name = ${role}) desc, nr.id limit 1`);
  return r?.id;
}

/**
 * The node that hosts service-flag roles: the deployment's phantom node (reference §1.7; DR forced them
 * there), else — a deployment from before phantoms — the closest ancestor's.
 */
async function phantomNode(g: GraphTx, deploymentId: number): Promise<number | undefined> {
  for (const d of await deploymentChain(g, deploymentId)) {
    const p = await g.one<{ id: number }>(
      sql`select id from inventory.nodes where system and deployment_id = ${d} order by id limit 1`,
    );
    if (p) return p.id;
  }
  return (await g.one<{ id: number }>(sql`select id from inventory.nodes where system order by id limit 1`))
    ?.id;
}

async function validateAgainstNode(g: GraphTx, role: RoleRow, nodeId: number) {
  if (role.flags.includes('abstract'))
    throw new ValidationError(`role ${role.name} is abstract and cannot be bound`, { field: 'role' });
  // The admin node is the machine the control plane runs on: a destructive role (an OS install) would
  // wipe it. It joins instead (crowbar-joined-node provides crowbar-installed-node, reference §1.16).
  if (role.flags.includes('destructive')) {
    const admin = await g.one(sql`select 1 from inventory.nodes where id = ${nodeId} and admin`);
    if (admin)
      throw new ConflictError(
        `role ${role.name} is destructive and cannot be bound to the admin node; bind crowbar-joined-node first, which provides crowbar-installed-node`,
        { rule: 'the admin node is never installed' },
      );
  }
  const existing = await g.rows<{ name: string; conflicts: string[]; provides: string[] }>(sql`
    select r.name, r.conflicts, r.provides from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    where nr.node_id = ${nodeId}`);
  for (const e of existing) {
    if (role.conflicts.includes(e.name) || e.conflicts.includes(role.name)) {
      throw new ConflictError(`role ${role.name} conflicts with ${e.name} already on the node`, {
        rule: 'conflicts',
      });
    }
    if (e.provides.includes(role.name)) {
      throw new ConflictError(`role ${role.name} is already provided by ${e.name} on the node`, {
        rule: 'provides',
      });
    }
    if (role.provides.includes(e.name) || role.provides.some((p) => e.provides.includes(p))) {
      throw new ConflictError(`role ${role.name} provides something ${e.name} already provides on the node`, {
        rule: 'provides',
      });
    }
  }
}

/**
 * The binding algorithm (reference §1.11): reuse an existing binding; find each wanted parent on the same
 * node, else (non-implicit parents) up the deployment chain, else create it; service roles live on the
 * system phantom node. New noderoles are PROPOSED with cohort = max(parent cohort) + 1.
 */
export async function bind(
  g: GraphTx,
  roleName: string,
  nodeId: number,
  deploymentId: number,
  depth = 0,
): Promise<number> {
  if (depth > 64) throw new ValidationError(`binding ${roleName} recursed too deep`, { field: 'role' });
  const role = await roleByName(g, roleName);
  // Service roles front a cluster-wide service: they always live on the system phantom node.
  if (role.flags.includes('service')) nodeId = (await phantomNode(g, deploymentId)) ?? nodeId;
  const existing = await g.one<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${nodeId} and role_id = ${role.id}`,
  );
  if (existing) return existing.id;
  await joinAdminFirst(g, role, nodeId, deploymentId, depth);
  await validateAgainstNode(g, role, nodeId);

  const attribOwners = role.wantsAttribs.length
    ? await g.rows<{ name: string }>(sql`
        select distinct r.name from inventory.attribs a join inventory.roles r on r.id = a.role_id
        where a.name = any(${sql.param(role.wantsAttribs)}::text[]) and r.id <> ${role.id}`)
    : [];
  const wanted = [...new Set([...role.requires, ...attribOwners.map((r) => r.name)])];
  const chain = await deploymentChain(g, deploymentId);
  const parents: number[] = [];
  for (const p of wanted) {
    const pRole = await g.one<{ flags: string[] }>(sql`
      select flags from inventory.roles where name = ${p} or ${p} = any(provides) order by (name = ${p}) desc limit 1`);
    if (!pRole)
      throw new ValidationError(`role ${role.name} requires ${p}, which no barclamp defines`, {
        field: 'role',
      });
    let found = await findOnNode(g, nodeId, p);
    if (!found && !pRole.flags.includes('implicit')) {
      for (const d of chain) {
        found = await findInDeployment(g, d, p);
        if (found) break;
      }
    }
    if (!found) found = await bind(g, p, nodeId, deploymentId, depth + 1);
    parents.push(found);
  }

  await g.rows(sql`insert into inventory.deployment_roles (deployment_id, role_id) values (${deploymentId}, ${role.id})
                   on conflict (deployment_id, role_id) do nothing`);
  const cohort = parents.length
    ? ((
        await g.one<{ c: number }>(
          sql`select max(cohort)::int + 1 as c from inventory.noderoles where ${idIn(sql`id`, parents)}`,
        )
      )?.c ?? 0)
    : 0;
  const created = await g.one<{ id: number }>(sql`
    insert into inventory.noderoles (node_id, role_id, deployment_id, state, cohort)
    values (${nodeId}, ${role.id}, ${deploymentId}, 'proposed', ${cohort}) returning id`);
  const id = created!.id;
  for (const p of parents) await link(g, p, id);
  // Cluster roles: a new instance adopts its peers' children.
  if (role.flags.includes('cluster')) {
    await g.rows(sql`
      insert into inventory.noderole_edges (parent_id, child_id)
      select ${id}, e.child_id from inventory.noderole_edges e join inventory.noderoles peer on peer.id = e.parent_id
      where peer.role_id = ${role.id} and peer.deployment_id = ${deploymentId} and peer.id <> ${id}
      on conflict do nothing`);
  }
  const summary = await g.noderoleSummary(id);
  g.log.info(
    { noderole: id, node: summary.node, role: role.name, cohort, correlationId: g.lineage.correlationId },
    'noderole bound',
  );
  g.emit(inventoryEvents.noderoleProposed, { noderole: summary, from: null, reason: 'bound' });
  await g.nodeChanged(nodeId, ['roles'], `bound ${role.name}`);
  return id;
}

/**
 * On an admin node, a role requiring what `crowbar-joined-node` provides (`crowbar-installed-node`,
 * `crowbar-managed-node`) finds it there: joined-node is bound first, as the original bootstrap does
 * (reference §8, §1.16), so binding `crowbar-admin-node` never pulls in an OS install.
 */
async function joinAdminFirst(
  g: GraphTx,
  role: RoleRow,
  nodeId: number,
  deploymentId: number,
  depth: number,
) {
  const joined = 'crowbar-joined-node';
  if (role.name === joined || role.requires.length === 0) return;
  const j = await g.one<{ provides: string[] }>(sql`
    select r.provides from inventory.roles r join inventory.nodes n on n.id = ${nodeId} and n.admin
    where r.name = ${joined}
      and not exists (select 1 from inventory.noderoles nr where nr.node_id = n.id and nr.role_id = r.id)`);
  if (j && role.requires.some((x) => j.provides.includes(x)))
    await bind(g, joined, nodeId, deploymentId, depth + 1);
}

/** Adds a parent edge (and, for cluster-role parents, the same edge under every peer). */
async function link(g: GraphTx, parentId: number, childId: number) {
  await g.rows(
    sql`insert into inventory.noderole_edges (parent_id, child_id) values (${parentId}, ${childId}) on conflict do nothing`,
  );
  await g.rows(sql`
    insert into inventory.noderole_edges (parent_id, child_id)
    select peer.id, ${childId} from inventory.noderoles p join inventory.roles r on r.id = p.role_id
    -- Peers are looked for only under a cluster role (offset 0 keeps the filter first).
    cross join lateral (select q.id from inventory.noderoles q
      where q.role_id = p.role_id and q.deployment_id = p.deployment_id and q.id <> p.id offset 0) peer
    where p.id = ${parentId} and 'cluster' = any(r.flags)
    on conflict do nothing`);
}
