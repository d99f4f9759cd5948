import type { Json } from '../../../shared/catalogue/index.js';
import { NotFoundError, ValidationError } from '../../../shared/errors.js';
import { schemaProblem } from '../domain/schema.js';
import {
  type AttribRow,
  attribNamed,
  attribRows,
  deploymentRoleAttribData,
  noderoleData,
} from '../store/attribs.js';
import { noderoleOfRole } from '../store/binding.js';
import { deploymentRoleProposed, setDeploymentRoleProposed } from '../store/deployments.js';
import { activeNoderolesWanting, noderoleProposedData, setNoderoleProposedData } from '../store/noderoles.js';
import { lockNodeHint, nodeData, setNodeHint } from '../store/nodes.js';
import { roleName, roleTemplate } from '../store/roles.js';
import { deepMerge, getPath, type JsonObject, setPath } from './data.js';
import { blockOrTodo } from './transitions.js';
import type { GraphTx } from './tx.js';

async function attrib(g: GraphTx, name: string): Promise<AttribRow> {
  const a = await attribNamed(g, name);
  if (!a) throw new NotFoundError(`no attrib ${name}`, { field: 'attrib' });
  return a;
}

/** The value, if it fits the attrib's schema. */
function checkValue(a: AttribRow, value: Json | undefined): Json {
  const problem = schemaProblem(a.schema, value);
  if (problem) throw new ValidationError(`attrib ${a.name}: ${problem}`, { field: 'value' });
  // A schema without a type lets a missing value through; writing nothing is a mistake all the same.
  if (value === undefined)
    throw new ValidationError(`attrib ${a.name}: value: must be given`, { field: 'value' });
  return value;
}

export async function listAttribs(g: GraphTx) {
  return attribRows(g);
}

/**
 * Target resolution (reference §1.6): a role-owned attrib asked of a node is the node's noderole of
 * that role; node-level attribs stay on the node.
 */
async function resolveTarget(
  g: GraphTx,
  a: AttribRow,
  target: string,
  id: number,
): Promise<[string, number]> {
  if (target !== 'node' || a.roleId === null) return [target, id];
  const nr = await noderoleOfRole(g, id, a.roleId);
  if (nr === undefined) {
    const role = await roleName(g, a.roleId);
    throw new NotFoundError(`attrib ${a.name} belongs to role ${role}, which node ${id} does not have`, {
      field: 'attrib',
    });
  }
  return ['noderole', nr];
}

/**
 * The value an attrib has for a node, noderole, deployment role or role: the target's data, over the
 * role template, over the attrib's default (reference §1.6 `get`). For a noderole or deployment role
 * whose user data was written since its last commit, `proposed` is the value that commit will make
 * effective.
 */
export async function getAttrib(
  g: GraphTx,
  target: string,
  id: number,
  name: string,
): Promise<{ name: string; value: Json; proposed?: Json }> {
  const a = await attrib(g, name);
  const [kind, key] = await resolveTarget(g, a, target, id);
  let blob: JsonObject = {};
  let pending: JsonObject | null = null;
  if (kind === 'node') {
    const n = await nodeData<JsonObject>(g, key);
    if (!n) throw new NotFoundError(`no node ${key}`, { field: 'node' });
    blob = deepMerge(n.discovery, n.hint);
  } else if (kind === 'noderole') {
    const r = await noderoleData(g, key);
    if (!r) throw new NotFoundError(`no noderole ${key}`, { field: 'noderole' });
    blob = deepMerge(r.t, r.dw, r.dc, r.wall, r.sysdata, r.state === 'proposed' ? r.p : r.c);
    if (r.state !== 'proposed') pending = r.p;
  } else if (kind === 'deployment_role') {
    const r = await deploymentRoleAttribData(g, key);
    if (!r) throw new NotFoundError(`no deployment role ${key}`, { field: 'deployment_role' });
    blob = deepMerge(r.t, r.wall, r.c);
    pending = r.p;
  } else if (kind === 'role') {
    const t = await roleTemplate<JsonObject>(g, key);
    if (t === undefined) throw new NotFoundError(`no role ${key}`, { field: 'role' });
    blob = t;
  }
  const v = getPath(blob, a.map);
  const value = v === undefined ? (a.defaultValue ?? null) : v;
  const p = pending ? getPath(pending, a.map) : undefined;
  return p !== undefined && JSON.stringify(p) !== JSON.stringify(value)
    ? { name, value, proposed: p }
    : { name, value };
}

/**
 * Writes an attrib as the operator (reference §1.6 `set`, bucket `user`). A node's value goes to its
 * hint, and every ACTIVE noderole on the node whose role wants the attrib is poked (it runs again). A
 * noderole's or deployment role's value goes to its proposed data: it takes effect when that is
 * committed (a noderole: propose, then commit; a deployment role: its commit, which re-runs its users).
 */
export async function setAttrib(
  g: GraphTx,
  target: string,
  id: number,
  name: string,
  given: Json | undefined,
): Promise<{ name: string; value: Json; pending: boolean }> {
  const a = await attrib(g, name);
  if (!a.writable) throw new ValidationError(`attrib ${name} is read-only`, { field: 'attrib' });
  const value = checkValue(a, given);
  const [kind, key] = await resolveTarget(g, a, target, id);
  if (kind === 'node') {
    const n = await lockNodeHint<JsonObject>(g, key);
    if (!n) throw new NotFoundError(`no node ${key}`, { field: 'node' });
    await setNodeHint(g, key, JSON.stringify(setPath(n.hint, a.map, value)));
    await g.nodeChanged(key, ['hint'], `attrib ${name} set`);
    const wanting = await activeNoderolesWanting(g, key, name);
    for (const w of wanting) {
      const nr = await g.noderole(w.id);
      if (nr?.state === 'active') await blockOrTodo(g, nr, `node attrib ${name} changed`);
    }
    return { name, value, pending: false };
  }
  if (kind === 'noderole') {
    const nr = await g.noderole(key);
    if (!nr) throw new NotFoundError(`no noderole ${key}`, { field: 'noderole' });
    const p = await noderoleProposedData<JsonObject>(g, key);
    await setNoderoleProposedData(g, key, JSON.stringify(setPath(p!, a.map, value)));
    return { name, value, pending: nr.state !== 'proposed' };
  }
  const p = await deploymentRoleProposed<JsonObject>(g, key, true);
  if (p === undefined) throw new NotFoundError(`no deployment role ${key}`, { field: 'deployment_role' });
  await setDeploymentRoleProposed(g, key, JSON.stringify(setPath(p, a.map, value)), true);
  return { name, value, pending: true };
}
