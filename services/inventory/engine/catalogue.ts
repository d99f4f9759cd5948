import { type BarclampSpec, checkRoleGraph, type RoleSpec } from '../domain/barclamp.js';
import { upsertAttribRow } from '../store/attribs.js';
import { roleGraph, upsertBarclamp, upsertRoleRow } from '../store/roles.js';
import type { JsonObject } from './data.js';
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

export async function upsertRole(g: GraphTx, barclampId: number, r: RoleInput): Promise<number> {
  return upsertRoleRow(g, barclampId, {
    name: r.name,
    description: r.description,
    jig: r.jig,
    owner: r.owner,
    flags: r.flags,
    requires: r.requires,
    wantsAttribs: r['wants-attribs'],
    provides: r.provides,
    conflicts: r.conflicts,
    template: r.template,
    scripts: r.scripts,
    timeoutSeconds: r.timeout,
  });
}

/**
 * Imports barclamps idempotently (find-or-create, then update). The whole role graph — these barclamps
 * plus roles other services defined — is checked first: an unresolved require or a cycle refuses the import.
 */
export async function importBarclamps(g: GraphTx, specs: BarclampSpec[]): Promise<void> {
  const fileRoles = specs.flatMap((b) => b.roles);
  const names = new Set(fileRoles.map((r) => r.name));
  const others = await roleGraph(g);
  checkRoleGraph([...fileRoles, ...others.filter((o) => !names.has(o.name))]);
  for (const b of specs) {
    const bid = await upsertBarclamp(g, b);
    for (const a of b.attribs) await upsertAttribRow(g, bid, null, a);
    for (const r of b.roles) {
      const rid = await upsertRole(g, bid, r);
      for (const a of r.attribs) await upsertAttribRow(g, bid, rid, a);
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
    template: JsonObject;
    owner: string | null;
  },
): Promise<number> {
  const all = await roleGraph(g);
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
