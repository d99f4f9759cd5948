import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { json, jsonObject } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';

export const roleFlags = [
  'implicit',
  'bootstrap',
  'discovery',
  'cluster',
  'destructive',
  'abstract',
  'service',
  'milestone',
  'powersave',
] as const;
export const jigs = ['noop', 'script', 'service'] as const;

const name = z
  .string()
  .regex(/^[a-z][-_a-z0-9]*$/, 'must start with a letter: lower-case letters, digits, - and _');

const attribSpec = z.object({
  name,
  map: z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'must be a slash-separated path'),
  description: z.string().default(''),
  schema: jsonObject.default({}),
  default: json.optional(),
  writable: z.boolean().default(true),
});

const roleSpec = z.object({
  name,
  description: z.string().default(''),
  jig: z.enum(jigs),
  owner: z.string().nullable().default(null),
  flags: z.array(z.enum(roleFlags)).default([]),
  requires: z.array(name).default([]),
  'wants-attribs': z.array(name).default([]),
  provides: z.array(name).default([]),
  conflicts: z.array(name).default([]),
  template: jsonObject.default({}),
  attribs: z.array(attribSpec).default([]),
  timeout: z.number().int().positive().max(86_400).default(600),
});

export const barclampSpec = z.object({
  barclamp: z.object({ name, description: z.string().default(''), version: z.string().default('0') }),
  attribs: z.array(attribSpec).default([]),
  roles: z.array(roleSpec).default([]),
});

export type RoleSpec = z.infer<typeof roleSpec> & { scripts: Record<string, string> };
export type AttribSpec = z.infer<typeof attribSpec>;
export interface BarclampSpec {
  name: string;
  description: string;
  version: string;
  sourcePath: string;
  attribs: AttribSpec[];
  roles: RoleSpec[];
}

/** Reads every `<dir>/*.yml` barclamp and the scripts under `<dir>/scripts/<role>/`. */
export function readBarclamps(dir: string): BarclampSpec[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'));
  return files.sort().map((f) => {
    const path = join(dir, f);
    const raw: unknown = parse(readFileSync(path, 'utf8'));
    const r = barclampSpec.safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new ValidationError(`${f}: ${i?.path.join('.')}: ${i?.message}`, {
        field: i?.path.join('.') ?? f,
      });
    }
    const roles = r.data.roles.map((role) => ({
      ...role,
      scripts: readScripts(join(dir, 'scripts', role.name)),
    }));
    for (const role of roles) {
      if (role.jig === 'script' && Object.keys(role.scripts).length === 0) {
        throw new ValidationError(
          `${f}: role ${role.name} uses the script jig but has no scripts in scripts/${role.name}/`,
          {
            field: `roles.${role.name}`,
          },
        );
      }
      if (role.jig === 'service' && !role.owner) {
        throw new ValidationError(`${f}: role ${role.name} uses the service jig but names no owner`, {
          field: `roles.${role.name}.owner`,
        });
      }
    }
    return { ...r.data.barclamp, sourcePath: path, attribs: r.data.attribs, roles };
  });
}

function readScripts(dir: string): Record<string, string> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.sh') && statSync(join(dir, f)).isFile());
  } catch {
    return {};
  }
  return Object.fromEntries(files.sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

/**
 * Checks the role graph as a whole: every require resolves (to a role or to something a role provides),
 * and requires have no cycle. Throws a ValidationError naming the role.
 */
export function checkRoleGraph(roles: Pick<RoleSpec, 'name' | 'requires' | 'provides'>[]): void {
  const byName = new Map(roles.map((r) => [r.name, r]));
  const provided = new Set(roles.flatMap((r) => r.provides));
  for (const r of roles) {
    for (const req of r.requires) {
      if (!byName.has(req) && !provided.has(req)) {
        throw new ValidationError(`role ${r.name} requires ${req}, which no barclamp defines`, {
          field: `roles.${r.name}.requires`,
        });
      }
    }
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, path: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      throw new ValidationError(`role requires form a cycle: ${[...path, n].join(' -> ')}`, {
        field: `roles.${n}.requires`,
      });
    }
    state.set(n, 'visiting');
    for (const req of byName.get(n)?.requires ?? []) if (byName.has(req)) visit(req, [...path, n]);
    state.set(n, 'done');
  };
  for (const r of roles) visit(r.name, []);
}
