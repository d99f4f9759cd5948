import { sql } from 'drizzle-orm';
import { NotFoundError, ValidationError } from '../../../shared/errors.js';
import { deepMerge, getPath, type Json, setPath } from './data.js';
import { blockOrTodo } from './transitions.js';
import type { GraphTx } from './tx.js';

interface AttribRow {
  id: number;
  name: string;
  map: string;
  schema: Json;
  defaultValue: unknown;
  writable: boolean;
}

async function attrib(g: GraphTx, name: string): Promise<AttribRow> {
  const a = await g.one<AttribRow>(
    sql`select id, name, map, schema, default_value as "defaultValue", writable from inventory.attribs where name = ${name}`,
  );
  if (!a) throw new NotFoundError(`no attrib ${name}`, { field: 'attrib' });
  return a;
}

const jsonType = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v;

function checkValue(a: AttribRow, value: unknown) {
  const want = a.schema.type;
  if (typeof want !== 'string') return;
  const got = jsonType(value);
  const ok = got === want || (want === 'number' && got === 'integer');
  if (!ok) throw new ValidationError(`attrib ${a.name} must be a ${want}, got ${got}`, { field: 'value' });
}

export async function listAttribs(g: GraphTx) {
  return g.rows(sql`select a.name, a.map, a.description, a.schema, a.default_value as "default", a.writable, r.name as role
                    from inventory.attribs a left join inventory.roles r on r.id = a.role_id order by a.name`);
}

/** The value an attrib has for a node, noderole, deployment role or role (defaults underneath). */
export async function getAttrib(
  g: GraphTx,
  target: string,
  id: number,
  name: string,
): Promise<{ name: string; value: unknown }> {
  const a = await attrib(g, name);
  let blob: Json = {};
  if (target === 'node') {
    const n = await g.one<{ hint: Json; discovery: Json }>(
      sql`select hint, discovery from inventory.nodes where id = ${id}`,
    );
    if (!n) throw new NotFoundError(`no node ${id}`, { field: 'node' });
    blob = deepMerge(n.discovery, n.hint);
  } else if (target === 'noderole') {
    const r = await g.one<{ state: string; wall: Json; sysdata: Json; p: Json; c: Json }>(sql`
      select state, wall, sysdata, proposed_data as p, committed_data as c from inventory.noderoles where id = ${id}`);
    if (!r) throw new NotFoundError(`no noderole ${id}`, { field: 'noderole' });
    blob = deepMerge(r.wall, r.sysdata, r.state === 'proposed' ? r.p : r.c);
  } else if (target === 'deployment_role') {
    const r = await g.one<{ wall: Json; p: Json }>(
      sql`select wall, proposed_data as p from inventory.deployment_roles where id = ${id}`,
    );
    if (!r) throw new NotFoundError(`no deployment role ${id}`, { field: 'deployment_role' });
    blob = deepMerge(r.wall, r.p);
  }
  const v = getPath(blob, a.map);
  return { name, value: v === undefined ? (a.defaultValue ?? null) : v };
}

/**
 * Writes an attrib. On a noderole outside PROPOSED the value takes effect at once and an ACTIVE noderole
 * is "poked" (block_or_todo) so it runs again with the new value.
 */
export async function setAttrib(
  g: GraphTx,
  target: string,
  id: number,
  name: string,
  value: unknown,
): Promise<{ name: string; value: unknown }> {
  const a = await attrib(g, name);
  if (!a.writable) throw new ValidationError(`attrib ${name} is read-only`, { field: 'attrib' });
  checkValue(a, value);
  if (target === 'node') {
    const n = await g.one<{ hint: Json }>(sql`select hint from inventory.nodes where id = ${id} for update`);
    if (!n) throw new NotFoundError(`no node ${id}`, { field: 'node' });
    await g.rows(
      sql`update inventory.nodes set hint = ${JSON.stringify(setPath(n.hint, a.map, value))}::jsonb where id = ${id}`,
    );
    await g.nodeChanged(id, ['hint'], `attrib ${name} set`);
  } else if (target === 'noderole') {
    const nr = await g.noderole(id);
    if (!nr) throw new NotFoundError(`no noderole ${id}`, { field: 'noderole' });
    const r = await g.one<{ p: Json; c: Json }>(
      sql`select proposed_data as p, committed_data as c from inventory.noderoles where id = ${id}`,
    );
    const p = setPath(r!.p, a.map, value);
    const c = nr.state === 'proposed' ? r!.c : setPath(r!.c, a.map, value);
    await g.rows(
      sql`update inventory.noderoles set proposed_data = ${JSON.stringify(p)}::jsonb, committed_data = ${JSON.stringify(c)}::jsonb where id = ${id}`,
    );
    if (nr.state === 'active') await blockOrTodo(g, nr, `attrib ${name} changed`);
  } else {
    const r = await g.one<{ p: Json; c: Json; committed: boolean }>(sql`
      select dr.proposed_data as p, dr.committed_data as c, d.state = 'committed' as committed
      from inventory.deployment_roles dr join inventory.deployments d on d.id = dr.deployment_id where dr.id = ${id} for update of dr`);
    if (!r) throw new NotFoundError(`no deployment role ${id}`, { field: 'deployment_role' });
    const p = setPath(r.p, a.map, value);
    await g.rows(sql`update inventory.deployment_roles set proposed_data = ${JSON.stringify(p)}::jsonb,
                     committed_data = ${JSON.stringify(r.committed ? setPath(r.c, a.map, value) : r.c)}::jsonb where id = ${id}`);
  }
  return { name, value };
}
