import { sql } from 'drizzle-orm';
import type { Json, JsonObject } from '../../../shared/catalogue/index.js';
import { type BarclampSpec, checkRoleGraph, type RoleSpec } from '../domain/barclamp.js';
import type { GraphTx } from './tx.js';

type RoleInput = Pick<
  RoleSpec,
  | 'name'
  | 'description'
  | 'jig'
  | 'owner'
  | 'flags'
  | 'requires'
  | 'provides'
  | 'conflicts'
  | 'template'
  | 'scripts'
> & {
  'wants-attribs': string[];
  timeout: number;
};

async function upsertBarclamp(
  g: GraphTx,
  b: { name: string; description: string; version: string; sourcePath: string },
) {
  const r = await g.one<{ id: number }>(sql`
    insert into inventory.barclamps (name, description, version, source_path) values (${b.name}, ${b.description}, ${b.version}, ${b.sourcePath})
    on conflict (name) do update set description = excluded.description, version = excluded.version,
      source_path = excluded.source_path, updated_at = now()
    returning id`);
  return r!.id;
}

export async function upsertRole(g: GraphTx, barclampId: number, r: RoleInput): Promise<number> {
  const arr = (xs: readonly string[]) => sql`${`{${xs.map((x) => `"${x}"`).join(',')}}`}::text[]`;
  const row = await g.one<{ id: number }>(sql`
    insert into inventory.roles (name, barclamp_id, description, jig, owner, flags, requires, wants_attribs, provides, conflicts,
                                 template, scripts, timeout_seconds)
    values (${r.name}, ${barclampId}, ${r.description}, ${r.jig}, ${r.owner}, ${arr(r.flags)}, ${arr(r.requires)},
            ${arr(r['wants-attribs'])}, ${arr(r.provides)}, ${arr(r.conflicts)}, ${JSON.stringify(r.template)}::jsonb,
            ${JSON.stringify(r.scripts)}::jsonb, ${r.timeout})
    on conflict (name) do update set barclamp_id = excluded.barclamp_id, description = excluded.description, jig = excluded.jig,
      owner = excluded.owner, flags = excluded.flags, requires = excluded.requires, wants_attribs = excluded.wants_attribs,
      provides = excluded.provides, conflicts = excluded.conflicts, template = excluded.template, scripts = excluded.scripts,
      timeout_seconds = excluded.timeout_seconds, updated_at = now()
    returning id`);
  return row!.id;
}

async function upsertAttrib(
  g: GraphTx,
  barclampId: number,
  roleId: number | null,
  a: {
    name: string;
    map: string;
    description: string;
    schema: JsonObject;
    default?: Json | undefined;
    writable: boolean;
  },
) {
  await g.rows(sql`
    insert into inventory.attribs (name, barclamp_id, role_id, description, map, schema, default_value, writable)
    values (${a.name}, ${barclampId}, ${roleId}, ${a.description}, ${a.map}, ${JSON.stringify(a.schema)}::jsonb,
            ${a.default === undefined ? null : JSON.stringify(a.default)}::jsonb, ${a.writable})
    on conflict (name) do update set barclamp_id = excluded.barclamp_id, role_id = excluded.role_id, description = excluded.description,
      map = excluded.map, schema = excluded.schema, default_value = excluded.default_value, writable = excluded.writable`);
}

/**
 * Imports barclamps idempotently (find-or-create, then update). The whole role graph — these barclamps
 * plus roles other services defined — is checked first: an unresolved require or a cycle refuses the import.
 */
export async function importBarclamps(g: GraphTx, specs: BarclampSpec[]): Promise<void> {
  const fileRoles = specs.flatMap((b) => b.roles);
  const names = new Set(fileRoles.map((r) => r.name));
  const others = await g.rows<{ name: string; requires: string[]; provides: string[] }>(
    sql`select name, requires, provides from inventory.roles`,
  );
  checkRoleGraph([...fileRoles, ...others.filter((o) => !names.has(o.name))]);
  for (const b of specs) {
    const bid = await upsertBarclamp(g, b);
    for (const a of b.attribs) await upsertAttrib(g, bid, null, a);
    for (const r of b.roles) {
      const rid = await upsertRole(g, bid, r);
      for (const a of r.attribs) await upsertAttrib(g, bid, rid, a);
    }
  }
}

/** A role defined at run time by another service (e.g. `network-admin`), idempotent by name. */
export async function defineRole(
  g: GraphTx,
  r: {
    name: string;
    barclamp: string;
    description: string;
    jig: string;
    requires: string[];
    flags: string[];
    template: Record<string, unknown>;
    owner: string | null;
  },
): Promise<number> {
  const all = await g.rows<{ name: string; requires: string[]; provides: string[] }>(
    sql`select name, requires, provides from inventory.roles`,
  );
  checkRoleGraph([
    ...all.filter((o) => o.name !== r.name),
    { name: r.name, requires: r.requires, provides: [] },
  ]);
  const bid = await upsertBarclamp(g, {
    name: r.barclamp,
    description: '',
    version: '0',
    sourcePath: 'defined by service',
  });
  return upsertRole(g, bid, {
    name: r.name,
    description: r.description,
    jig: r.jig as RoleSpec['jig'],
    owner: r.owner,
    flags: r.flags as RoleSpec['flags'],
    requires: r.requires,
    provides: [],
    conflicts: [],
    template: r.template,
    scripts: {},
    'wants-attribs': [],
    timeout: 600,
  });
}
