import { sql } from 'drizzle-orm';
import type { StoreTx } from './query.js';

/** Queries on `inventory.roles` and `inventory.barclamps`. */

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

export const roleNamed = (q: StoreTx, name: string) =>
  q.one<RoleRow>(sql`
    select id, name, jig, owner, flags, requires, wants_attribs as "wantsAttribs", provides, conflicts
    from inventory.roles where name = ${name}`);

export async function roleIdNamed(q: StoreTx, name: string): Promise<number | undefined> {
  return (await q.one<{ id: number }>(sql`select id from inventory.roles where name = ${name}`))?.id;
}

export async function roleExists(q: StoreTx, name: string): Promise<boolean> {
  return (await q.one(sql`select 1 from inventory.roles where name = ${name}`)) !== undefined;
}

export async function roleName(q: StoreTx, id: number): Promise<string | undefined> {
  return (await q.one<{ name: string }>(sql`select name from inventory.roles where id = ${id}`))?.name;
}

export async function roleTemplate<T>(q: StoreTx, id: number): Promise<T | undefined> {
  return (await q.one<{ t: T }>(sql`select template as t from inventory.roles where id = ${id}`))?.t;
}

/** The flags of the role named `name`, else of a role providing it. */
export const providerFlags = (q: StoreTx, name: string) =>
  q.one<{ flags: string[] }>(sql`
      select flags from inventory.roles where name = ${name} or ${name} = any(provides) order by (name = ${name}) desc limit 1`);

/** Names of the roles carrying a flag, in name order. */
export function rolesFlagged(q: StoreTx, flag: 'bootstrap' | 'discovery') {
  return flag === 'bootstrap'
    ? q.rows<{ name: string }>(
        sql`select name from inventory.roles where 'bootstrap' = any(flags) order by name`,
      )
    : q.rows<{ name: string }>(
        sql`select name from inventory.roles where 'discovery' = any(flags) order by name`,
      );
}

/** Which of `names` are defined. */
export const rolesNamed = (q: StoreTx, names: string[]) =>
  q.rows<{ name: string }>(
    sql`select name from inventory.roles where name = any(${sql.param(names)}::text[])`,
  );

/** Every role's place in the role graph. */
export const roleGraph = (q: StoreTx) =>
  q.rows<{ name: string; requires: string[]; provides: string[] }>(
    sql`select name, requires, provides from inventory.roles`,
  );

/** Roles other than `roleId` owning one of the attribs `names`. */
export const attribOwners = (q: StoreTx, names: string[], roleId: number) =>
  q.rows<{ name: string }>(sql`
        select distinct r.name from inventory.attribs a join inventory.roles r on r.id = a.role_id
        where a.name = any(${sql.param(names)}::text[]) and r.id <> ${roleId}`);

/** What role `joined` provides, if the node is an admin node that does not have it yet. */
export const joinableProvides = (q: StoreTx, joined: string, nodeId: number) =>
  q.one<{ provides: string[] }>(sql`
    select r.provides from inventory.roles r join inventory.nodes n on n.id = ${nodeId} and n.admin
    where r.name = ${joined}
      and not exists (select 1 from inventory.noderoles nr where nr.node_id = n.id and nr.role_id = r.id)`);

export async function deleteRoleRow(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`delete from inventory.roles where id = ${id}`);
}

export async function upsertBarclamp(
  q: StoreTx,
  b: { name: string; description: string; version: string; sourcePath: string },
): Promise<number> {
  const r = await q.one<{ id: number }>(sql`
    insert into inventory.barclamps (name, description, version, source_path) values (${b.name}, ${b.description}, ${b.version}, ${b.sourcePath})
    on conflict (name) do update set description = excluded.description, version = excluded.version,
      source_path = excluded.source_path, updated_at = now()
    returning id`);
  return r!.id;
}

export interface RoleUpsert {
  name: string;
  description: string;
  jig: string;
  owner: string | null;
  flags: readonly string[];
  requires: readonly string[];
  wantsAttribs: readonly string[];
  provides: readonly string[];
  conflicts: readonly string[];
  template: unknown;
  scripts: unknown;
  timeoutSeconds: number;
}

export async function upsertRoleRow(q: StoreTx, barclampId: number, r: RoleUpsert): Promise<number> {
  const arr = (xs: readonly string[]) => sql`${`{${xs.map((x) => `"${x}"`).join(',')}}`}::text[]`;
  const row = await q.one<{ id: number }>(sql`
    insert into inventory.roles (name, barclamp_id, description, jig, owner, flags, requires, wants_attribs, provides, conflicts,
                                 template, scripts, timeout_seconds)
    values (${r.name}, ${barclampId}, ${r.description}, ${r.jig}, ${r.owner}, ${arr(r.flags)}, ${arr(r.requires)},
            ${arr(r.wantsAttribs)}, ${arr(r.provides)}, ${arr(r.conflicts)}, ${JSON.stringify(r.template)}::jsonb,
            ${JSON.stringify(r.scripts)}::jsonb, ${r.timeoutSeconds})
    on conflict (name) do update set barclamp_id = excluded.barclamp_id, description = excluded.description, jig = excluded.jig,
      owner = excluded.owner, flags = excluded.flags, requires = excluded.requires, wants_attribs = excluded.wants_attribs,
      provides = excluded.provides, conflicts = excluded.conflicts, template = excluded.template, scripts = excluded.scripts,
      timeout_seconds = excluded.timeout_seconds, updated_at = now()
    returning id`);
  return row!.id;
}
