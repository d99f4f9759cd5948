import { createHash, randomBytes } from 'node:crypto';
import { inventoryEvents } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import { moveNoderoles as moveRows } from '../store/binding.js';
import { deploymentById, deploymentByName, ensureDeploymentRoles } from '../store/deployments.js';
import { countForeignChildrenOfNode, lockMovableNoderoles, proposedServiceParents } from '../store/graph.js';
import {
  deleteNoderoleRow,
  noderoleIdsOfNode,
  noderoleIdsOfNodeForDelete,
  noderoleIdsToDeactivate,
} from '../store/noderoles.js';
import {
  countAdminNodes,
  credentialHash,
  deleteNodeRow,
  firstAdminNode,
  insertNode,
  lockNode,
  type NodeFields,
  nodeById,
  nodeByName,
  nodeDeployment,
  nodeKind,
  nodeNameTaken,
  setCredentialHash,
  updateNodeFields,
} from '../store/nodes.js';
import { rolesFlagged, rolesNamed } from '../store/roles.js';
import { bind } from './binding.js';
import { commit, deactivate, propose } from './transitions.js';
import type { GraphTx } from './tx.js';

export const hashSecret = (s: string) => createHash('sha256').update(s).digest('hex');

/** Resolves an id or a name (`admin` = the first admin node) to a node id. */
export async function nodeId(g: GraphTx, ref: number | string): Promise<number> {
  const r =
    typeof ref === 'number' || /^\d+$/.test(ref)
      ? await nodeById(g, Number(ref))
      : ref === 'admin'
        ? await firstAdminNode(g)
        : await nodeByName(g, ref.toLowerCase());
  if (!r) throw new NotFoundError(`no node ${ref}`, { field: 'node' });
  return r.id;
}

export async function deploymentId(g: GraphTx, ref: number | string): Promise<number> {
  const r =
    typeof ref === 'number' || /^\d+$/.test(ref)
      ? await deploymentById(g, Number(ref))
      : await deploymentByName(g, ref);
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
  if (await nodeNameTaken(g, name)) {
    throw new ConflictError(`node ${name} already exists`, { rule: 'node names are unique' });
  }
  const dep = await deploymentId(g, n.deployment ?? 'system');
  // An admin node is a machine of the control plane itself: alive and available unless told otherwise.
  const adminDefault = n.admin === true;
  const credential = randomBytes(24).toString('base64url');
  const hint = { ...(n.hint ?? {}), ...(n.mac ? { admin_macs: [n.mac.toUpperCase()] } : {}) };
  const id = await insertNode(g, {
    name,
    description: n.description ?? '',
    admin: n.admin ?? false,
    system: n.system ?? false,
    alive: n.alive ?? adminDefault,
    available: n.available ?? adminDefault,
    bootenv: n.bootenv ?? 'sledgehammer',
    deploymentId: dep,
    hint,
    discovery: n.discovery ?? {},
    sshHostKey: n.sshHostKey ?? null,
    credentialHash: hashSecret(credential),
  });
  const node = await g.nodeSummary(id);
  g.log.info({ node: id, name, correlationId: g.lineage.correlationId }, 'node created');
  g.emit(inventoryEvents.nodeCreated, { node: node! });
  // Bootstrap roles go to every new admin node (reference §1.5).
  if (n.admin) {
    const boots = await rolesFlagged(g, 'bootstrap');
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
  const cur = await lockNode(g, id);
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
  const set: NodeFields = {};
  const change = <K extends keyof NodeFields>(field: string, key: K, value: NodeFields[K], old: unknown) => {
    if (value === undefined || value === old) return;
    changed.push(field);
    set[key] = value;
  };
  if (u.name !== undefined) {
    const name = u.name.toLowerCase();
    if (name !== cur.name && (await nodeNameTaken(g, name))) {
      throw new ConflictError(`node ${name} already exists`, { rule: 'node names are unique' });
    }
    change('name', 'name', name, cur.name);
  }
  change('description', 'description', u.description, cur.description);
  change('alive', 'alive', u.alive, cur.alive);
  change('available', 'available', u.available, cur.available);
  change('bootenv', 'bootenv', u.bootenv, cur.bootenv);
  change('sshHostKey', 'sshHostKey', u.sshHostKey, cur.sshHostKey);
  if (u.deployment !== undefined)
    change('deployment', 'deploymentId', await deploymentId(g, u.deployment), cur.deploymentId);
  if (u.hint !== undefined) {
    changed.push('hint');
    set.hint = u.hint;
  }
  if (u.discovery !== undefined) {
    changed.push('discovery');
    set.discovery = u.discovery;
  }
  if (changed.length === 0) return [];
  if (u.alive !== undefined && u.alive !== cur.alive) set.aliveReason = reason;
  await updateNodeFields(g, id, set);
  g.log.info({ node: id, changed, reason, correlationId: g.lineage.correlationId }, 'node changed');
  if (changed.includes('deployment')) await moveNoderoles(g, id, cur.deploymentId);
  if (cur.alive && u.alive === false) {
    // A destructive role's run in flight keeps its TRANSITION and token: its jig may already have done
    // its work (an install reboots the node), so its result must still count when it comes (`settle`:
    // run count up, then block_or_todo), or the role would run a second time when the node is back.
    const nrs = await noderoleIdsToDeactivate(g, id);
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
  const deployment = await nodeDeployment(g, id);
  if (deployment === undefined) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  const defined = await rolesNamed(g, [...adminRoles]);
  for (const r of adminRoles) if (defined.some((d) => d.name === r)) await bind(g, r, id, deployment);
  await updateNode(g, id, { alive: true }, 'the admin node is this machine');
}

/**
 * A node moved to another deployment takes along each of its noderoles in the old deployment that is
 * PROPOSED, has never run, and whose descendants are all likewise PROPOSED, never run and in the old
 * deployment; the deployment roles are created in the new one (reference §1.7). The rest stay put.
 */
async function moveNoderoles(g: GraphTx, nodeId: number, from: number): Promise<void> {
  const to = (await nodeDeployment(g, nodeId))!;
  const movable = await lockMovableNoderoles(g, nodeId, from);
  if (movable.length === 0) return;
  const ids = movable.map((m) => m.id);
  await ensureDeploymentRoles(g, to, [...new Set(movable.map((m) => m.roleId))]);
  await moveRows(g, ids, to);
  g.log.info({ node: nodeId, from, to, noderoles: ids }, 'noderoles moved with their node');
}

/** Node commit: available, then every PROPOSED noderole committed in cohort order. */
export async function commitNode(g: GraphTx, id: number): Promise<void> {
  const disc = await rolesFlagged(g, 'discovery');
  const node = await nodeKind(g, id);
  if (!node) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  if (node.admin) await bindAdminRoles(g, id);
  else if (!node.system) {
    for (const d of disc) await bind(g, d.name, id, node.deploymentId);
  }
  await updateNode(g, id, { available: true }, 'node committed');
  // Service roles its noderoles need live on a deployment's phantom node (reference §1.7): still
  // proposed there, they would keep this node BLOCKED for ever, so they are committed first.
  const services = await proposedServiceParents(g, id);
  for (const { id: nrId } of services) {
    const nr = await g.noderole(nrId);
    if (nr) await commit(g, nr, 'needed by a committed node');
  }
  const nrs = await noderoleIdsOfNode(g, id, true);
  for (const { id: nrId } of nrs) {
    const nr = await g.noderole(nrId);
    if (nr) await commit(g, nr, 'node committed');
  }
}

export async function proposeNode(g: GraphTx, id: number): Promise<void> {
  const nrs = await noderoleIdsOfNode(g, id, false);
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
    if ((await countAdminNodes(g)) <= 1)
      throw new ConflictError('the last admin node cannot be deleted', { rule: 'last admin node' });
  }
  if ((await countForeignChildrenOfNode(g, id)) > 0) {
    throw new ConflictError(`node ${node.name} has noderoles other nodes depend on`, {
      rule: 'cross-node children',
    });
  }
  const nrs = await noderoleIdsOfNodeForDelete(g, id);
  for (const { id: nrId } of nrs) {
    const s = await g.noderoleSummary(nrId);
    await deleteNoderoleRow(g, nrId);
    g.emit(inventoryEvents.noderoleDeleted, { noderole: s });
  }
  await deleteNodeRow(g, id);
  g.log.info({ node: id, name: node.name, correlationId: g.lineage.correlationId }, 'node deleted');
  g.emit(inventoryEvents.nodeDeleted, { node });
}

/** Replaces the node's credential with a new one, returned once (stored hashed like the first). */
export async function rotateCredential(g: GraphTx, id: number): Promise<string> {
  const credential = randomBytes(24).toString('base64url');
  await setCredentialHash(g, id, hashSecret(credential));
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
  const h = await credentialHash(g, id);
  return h && h === hashSecret(secret) ? id : null;
}
