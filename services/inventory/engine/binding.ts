import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, ValidationError } from '../../../shared/errors.js';
import {
  insertNoderole,
  nextCohort,
  noderoleOfRole,
  providerInDeployment,
  providerOnNode,
  rolesOnNode,
} from '../store/binding.js';
import { deploymentChain as chainOf, ensureDeploymentRoles } from '../store/deployments.js';
import { adoptPeerChildren, linkParent } from '../store/graph.js';
import { anySystemNode, isAdminNode, phantomOf } from '../store/nodes.js';
import {
  joinableProvides,
  attribOwners as ownersOf,
  providerFlags,
  type RoleRow,
  roleNamed,
} from '../store/roles.js';
import type { GraphTx } from './tx.js';

export type { RoleRow };

export async function roleByName(g: GraphTx, name: string): Promise<RoleRow> {
  const r = await roleNamed(g, name);
  if (!r) throw new NotFoundError(`no role ${name}`, { field: 'role' });
  return r;
}

/** The deployment and its ancestors, closest first. */
export async function deploymentChain(g: GraphTx, deploymentId: number): Promise<number[]> {
  return chainOf(g, deploymentId);
}

/**
 * The node that hosts service-flag roles: the deployment's phantom node (reference §1.7; DR forced them
 * there), else — a deployment from before phantoms — the closest ancestor's.
 */
async function phantomNode(g: GraphTx, deploymentId: number): Promise<number | undefined> {
  for (const d of await deploymentChain(g, deploymentId)) {
    const p = await phantomOf(g, d);
    if (p !== undefined) return p;
  }
  return anySystemNode(g);
}

async function validateAgainstNode(g: GraphTx, role: RoleRow, nodeId: number) {
  if (role.flags.includes('abstract'))
    throw new ValidationError(`role ${role.name} is abstract and cannot be bound`, { field: 'role' });
  // The admin node is the machine the control plane runs on: a destructive role (an OS install) would
  // wipe it. It joins instead (crowbar-joined-node provides crowbar-installed-node, reference §1.16).
  if (role.flags.includes('destructive')) {
    if (await isAdminNode(g, nodeId))
      throw new ConflictError(
        `role ${role.name} is destructive and cannot be bound to the admin node; bind crowbar-joined-node first, which provides crowbar-installed-node`,
        { rule: 'the admin node is never installed' },
      );
  }
  const existing = await rolesOnNode(g, nodeId);
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
  const existing = await noderoleOfRole(g, nodeId, role.id);
  if (existing !== undefined) return existing;
  await joinAdminFirst(g, role, nodeId, deploymentId, depth);
  await validateAgainstNode(g, role, nodeId);

  const attribOwners = role.wantsAttribs.length ? await ownersOf(g, role.wantsAttribs, role.id) : [];
  const wanted = [...new Set([...role.requires, ...attribOwners.map((r) => r.name)])];
  const chain = await deploymentChain(g, deploymentId);
  const parents: number[] = [];
  for (const p of wanted) {
    const pRole = await providerFlags(g, p);
    if (!pRole)
      throw new ValidationError(`role ${role.name} requires ${p}, which no barclamp defines`, {
        field: 'role',
      });
    let found = await providerOnNode(g, nodeId, p);
    if (!found && !pRole.flags.includes('implicit')) {
      for (const d of chain) {
        found = await providerInDeployment(g, d, p);
        if (found) break;
      }
    }
    if (!found) found = await bind(g, p, nodeId, deploymentId, depth + 1);
    parents.push(found);
  }

  await ensureDeploymentRoles(g, deploymentId, [role.id]);
  const cohort = parents.length ? ((await nextCohort(g, parents)) ?? 0) : 0;
  const id = await insertNoderole(g, { nodeId, roleId: role.id, deploymentId, cohort });
  for (const p of parents) await linkParent(g, p, id);
  // Cluster roles: a new instance adopts its peers' children.
  if (role.flags.includes('cluster')) await adoptPeerChildren(g, id, role.id, deploymentId);
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
  const j = await joinableProvides(g, joined, nodeId);
  if (j && role.requires.some((x) => j.provides.includes(x)))
    await bind(g, joined, nodeId, deploymentId, depth + 1);
}
