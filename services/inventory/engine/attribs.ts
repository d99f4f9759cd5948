import { sql } from 'drizzle-orm';
import type { Json } from '../../../shared/catalogue/index.js';
import { NotFoundError, ValidationError } from '../../../shared/errors.js';
import { schemaProblem } from '../domain/schema.js';
import { deepMerge, getPath, type JsonObject, setPath } from './data.js';
import type { RowOf } from './queries.js';
import { blockOrTodo } from './transitions.js';
import type { GraphTx } from './tx.js';

interface AttribRow {
  id: number;
  roleId: number | null;
  name: string;
  map: string;
  schema: JsonObject;
  defaultValue: Json;
  writable: boolean;
}

async function attrib(g: GraphTx, name: string): Promise<AttribRow> {
  const a = await g.one<AttribRow>(
    sql`select id, role_id as "roleId", name, map, schema, default_value as "defaultValue", writable from inventory.attribs where name = ${name}`,
  );
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
  return g.rows<
    RowOf<'attrib.list', 'attribs'>
  >(sql`select a.name, a.map, a.description, a.schema, a.default_value as "default", a.writable, r.name as role
                    from inventory.attribs a left join inventory.roles r on r.id = a.role_id order by a.name`);
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
  const nr = await g.one<{ id: number }>(
    sql`select id from inventory.noderoles where node_id = ${id} and role_id = ${a.roleId}`,
  );
  if (!nr) {
    const role = await g.one<{ name: string }>(sql`select name from inventory.roles where id = ${a.roleId}`);
    throw new NotFoundError(
      `attrib ${a.name} belongs to role ${role?.name}, which node ${id} does not have`,
      {
        field: 'attrib',
      },
    );
  }
  return ['noderole', nr.id];
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
    const n = await g.one<{ hint: JsonObject; discovery: JsonObject }>(
      sql`select hint, discovery from inventory.nodes where id = ${key}`,
    );
    if (!n) throw new NotFoundError(`no node ${key}`, { field: 'node' });
    blob = deepMerge(n.discovery, n.hint);
  } else if (kind === 'noderole') {
    const r = await g.one<{
      state: string;
      t: JsonObject;
      dw: JsonObject | null;
      dc: JsonObject | null;
      wall: JsonObject;
      sysdata: JsonObject;
      p: JsonObject;
      c: JsonObject;
    }>(sql`
      select nr.state, r.template as t, dr.wall as dw, dr.committed_data as dc, nr.wall, nr.sysdata,
             nr.proposed_data as p, nr.committed_data as c
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = ${key}`);
    if (!r) throw new NotFoundError(`no noderole ${key}`, { field: 'noderole' });
    blob = deepMerge(r.t, r.dw, r.dc, r.wall, r.sysdata, r.state === 'proposed' ? r.p : r.c);
    if (r.state !== 'proposed') pending = r.p;
  } else if (kind === 'deployment_role') {
    const r = await g.one<{ t: JsonObject; wall: JsonObject; p: JsonObject; c: JsonObject }>(sql`
      select r.template as t, dr.wall, dr.proposed_data as p, dr.committed_data as c from inventory.deployment_roles dr
      join inventory.roles r on r.id = dr.role_id where dr.id = ${key}`);
    if (!r) throw new NotFoundError(`no deployment role ${key}`, { field: 'deployment_role' });
    blob = deepMerge(r.t, r.wall, r.c);
    pending = r.p;
  } else if (kind === 'role') {
    const r = await g.one<{ t: JsonObject }>(
      sql`select template as t from inventory.roles where id = ${key}`,
    );
    if (!r) throw new NotFoundError(`no role ${key}`, { field: 'role' });
    blob = r.t;
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
    const n = await g.one<{ hint: JsonObject }>(
      sql`select hint from inventory.nodes where id = ${key} for update`,
    );
    if (!n) throw new NotFoundError(`no node ${key}`, { field: 'node' });
    await g.rows(
      sql`update inventory.nodes set hint = ${JSON.stringify(setPath(n.hint, a.map, value))}::jsonb, version = version + 1
          where id = ${key}`,
    );
    await g.nodeChanged(key, ['hint'], `attrib ${name} set`);
    const wanting = await g.rows<{ id: number }>(sql`
      select nr.id from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      join inventory.deployments d on d.id = nr.deployment_id
      where nr.node_id = ${key} and ${name} = any(r.wants_attribs) and nr.state = 'active' and d.state = 'committed'
      order by nr.cohort, nr.id`);
    for (const w of wanting) {
      const nr = await g.noderole(w.id);
      if (nr?.state === 'active') await blockOrTodo(g, nr, `node attrib ${name} changed`);
    }
    return { name, value, pending: false };
  }
  if (kind === 'noderole') {
    const nr = await g.noderole(key);
    if (!nr) throw new NotFoundError(`no noderole ${key}`, { field: 'noderole' });
    const r = await g.one<{ p: JsonObject }>(
      sql`select proposed_data as p from inventory.noderoles where id = ${key}`,
    );
    await g.rows(
      sql`update inventory.noderoles set proposed_data = ${JSON.stringify(setPath(r!.p, a.map, value))}::jsonb,
          version = version + 1 where id = ${key}`,
    );
    return { name, value, pending: nr.state !== 'proposed' };
  }
  const r = await g.one<{ p: JsonObject }>(
    sql`select proposed_data as p from inventory.deployment_roles where id = ${key} for update`,
  );
  if (!r) throw new NotFoundError(`no deployment role ${key}`, { field: 'deployment_role' });
  await g.rows(sql`update inventory.deployment_roles set proposed_data = ${JSON.stringify(setPath(r.p, a.map, value))}::jsonb,
                   updated_at = now() where id = ${key}`);
  return { name, value, pending: true };
}
