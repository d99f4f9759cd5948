import { sql } from 'drizzle-orm';
import type { Json, JsonObject } from '../../../shared/catalogue/index.js';
import type { StoreTx } from './query.js';
import type { RowOf } from './views.js';

/** Queries on `inventory.attribs`, and the data an attrib is read from. */

export interface AttribRow {
  id: number;
  roleId: number | null;
  name: string;
  map: string;
  schema: JsonObject;
  defaultValue: Json;
  writable: boolean;
}

export const attribNamed = (q: StoreTx, name: string) =>
  q.one<AttribRow>(
    sql`select id, role_id as "roleId", name, map, schema, default_value as "defaultValue", writable from inventory.attribs where name = ${name}`,
  );

export async function attribMap(q: StoreTx, name: string): Promise<string | undefined> {
  return (await q.one<{ map: string }>(sql`select map from inventory.attribs where name = ${name}`))?.map;
}

export const attribRows = (q: StoreTx) =>
  q.rows<
    RowOf<'attrib.list', 'attribs'>
  >(sql`select a.name, a.map, a.description, a.schema, a.default_value as "default", a.writable, r.name as role
                    from inventory.attribs a left join inventory.roles r on r.id = a.role_id order by a.name`);

export interface AttribUpsert {
  name: string;
  map: string;
  description: string;
  schema: JsonObject;
  default?: Json | undefined;
  writable: boolean;
}

export async function upsertAttribRow(
  q: StoreTx,
  barclampId: number,
  roleId: number | null,
  a: AttribUpsert,
): Promise<void> {
  await q.rows(sql`
    insert into inventory.attribs (name, barclamp_id, role_id, description, map, schema, default_value, writable)
    values (${a.name}, ${barclampId}, ${roleId}, ${a.description}, ${a.map}, ${JSON.stringify(a.schema)}::jsonb,
            ${a.default === undefined ? null : JSON.stringify(a.default)}::jsonb, ${a.writable})
    on conflict (name) do update set barclamp_id = excluded.barclamp_id, role_id = excluded.role_id, description = excluded.description,
      map = excluded.map, schema = excluded.schema, default_value = excluded.default_value, writable = excluded.writable`);
}

export async function deleteAttribsOfRole(q: StoreTx, roleId: number): Promise<void> {
  await q.rows(sql`delete from inventory.attribs where role_id = ${roleId}`);
}

/** What a noderole's attrib values are merged from. */
export interface NoderoleData {
  state: string;
  t: JsonObject;
  dw: JsonObject | null;
  dc: JsonObject | null;
  wall: JsonObject;
  sysdata: JsonObject;
  p: JsonObject;
  c: JsonObject;
}

export const noderoleData = (q: StoreTx, id: number) =>
  q.one<NoderoleData>(sql`
      select nr.state, r.template as t, dr.wall as dw, dr.committed_data as dc, nr.wall, nr.sysdata,
             nr.proposed_data as p, nr.committed_data as c
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = ${id}`);

/** What a deployment role's attrib values are merged from. */
export const deploymentRoleAttribData = (q: StoreTx, id: number) =>
  q.one<{ t: JsonObject; wall: JsonObject; p: JsonObject; c: JsonObject }>(sql`
      select r.template as t, dr.wall, dr.proposed_data as p, dr.committed_data as c from inventory.deployment_roles dr
      join inventory.roles r on r.id = dr.role_id where dr.id = ${id}`);
