import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

/**
 * Bootenvs as data (reference §6.4; Digital Rebar made them first-class): what a node in that bootenv
 * boots — kernel, initrds and kernel arguments, or a whole iPXE script — the install templates it
 * renders, and the bootenv that follows. Templates take `{{placeholder}}`s from a fixed list, checked
 * when the file is loaded, so a typo fails at start rather than on a machine's boot.
 */
export const placeholders = [
  'api',
  'provisioner',
  'server',
  'token',
  'mac',
  'bootenv',
  'node.name',
  'node.hostname',
  /** The node's domain (its name after the first label). */
  'node.domain',
  'node.id',
  /** ` crowbar.node=<fqdn>` for a known node, nothing for an unknown machine. */
  'node_arg',
  /** The URL of the bootenv's OS image (`image:`), for an installer. */
  'image',
  /** The disk the install writes (provisioner-os-install chose it), e.g. `vda`. */
  'disk',
] as const;
export type Placeholder = (typeof placeholders)[number];

const relPath = z
  .string()
  .min(1)
  .max(255)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'must be a path inside the boot root');
const template = z.string().max(65_536);

export const bootenvSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9._-]{0,62}$/, 'must be lower-case letters, digits, . _ -'),
    description: z.string().max(1000).default(''),
    /** Boots the local disk: DHCP gives no boot program; an iPXE client that asks gets `exit`. */
    local: z.boolean().default(false),
    kernel: relPath.optional(),
    initrds: z.array(relPath).max(8).default([]),
    args: template.default(''),
    /** The OS image (a zstd tar under the boot root) an installer bootenv writes to the disk. */
    image: relPath.optional(),
    /** A whole iPXE script instead of kernel/initrds/args. */
    ipxe: template.optional(),
    /** Install templates rendered per node (preseed, kickstart, …), served at /nodes/<name>/<file>. */
    templates: z.record(z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/), template).default({}),
    /** The bootenv that follows a finished install, e.g. `local`. */
    next: z.string().max(63).nullable().default(null),
  })
  .refine((b) => b.local || b.ipxe !== undefined || b.kernel !== undefined, {
    message: 'needs kernel (with initrds and args), a whole ipxe script, or local: true',
  });
export type Bootenv = z.infer<typeof bootenvSchema>;

const placeholderRe = /\{\{\s*([a-z_.]+)\s*\}\}/g;

/** Placeholders a template uses that do not exist. */
export function unknownPlaceholders(t: string): string[] {
  const bad = new Set<string>();
  for (const m of t.matchAll(placeholderRe))
    if (!(placeholders as readonly string[]).includes(m[1]!)) bad.add(m[1]!);
  return [...bad];
}

export type RenderContext = Record<Placeholder, string>;

export function render(t: string, ctx: RenderContext): string {
  return t.replace(placeholderRe, (_all, name: string) => ctx[name as Placeholder] ?? '');
}

export class BootenvError extends Error {}

/** Loads every `*.yml` of the directories; a later directory's bootenv of the same name wins. */
export function loadBootenvs(dirs: string[]): Map<string, Bootenv> {
  const out = new Map<string, Bootenv>();
  for (const dir of dirs) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'));
    } catch (cause) {
      throw new BootenvError(`bootenv directory ${dir} cannot be read`, { cause });
    }
    for (const f of files.sort()) {
      const path = join(dir, f);
      let doc: unknown;
      try {
        doc = parse(readFileSync(path, 'utf8'));
      } catch (cause) {
        throw new BootenvError(`${path}: not YAML`, { cause });
      }
      const r = bootenvSchema.safeParse((doc as { bootenv?: unknown } | null)?.bootenv);
      if (!r.success) {
        const issue = r.error.issues[0];
        throw new BootenvError(
          `${path}: ${issue?.path.join('.') || 'bootenv'} ${issue?.message ?? 'is invalid'}`,
        );
      }
      const b = r.data;
      for (const [field, t] of [
        ['args', b.args],
        ['ipxe', b.ipxe ?? ''],
        ...Object.entries(b.templates).map(([k, v]) => [`templates.${k}`, v]),
      ] as [string, string][]) {
        const bad = unknownPlaceholders(t);
        if (bad.length)
          throw new BootenvError(
            `${path}: ${field} uses unknown placeholder(s) ${bad.map((x) => `{{${x}}}`).join(', ')}`,
          );
      }
      out.set(b.name, b);
    }
  }
  for (const b of out.values())
    if (b.next !== null && !out.has(b.next))
      throw new BootenvError(`bootenv ${b.name}: next ${b.next} is not a bootenv`);
  return out;
}

/** The iPXE script a node in bootenv `b` gets. UEFI kernels need `initrd=<name>` on their line. */
export function ipxeScript(b: Bootenv, ctx: RenderContext): string {
  if (b.local) return '#!ipxe\necho Booting from the local disk\nexit 1\n';
  if (b.ipxe !== undefined) return render(b.ipxe, ctx);
  const names = b.initrds.map((p) => p.split('/').pop()!);
  const lines = ['#!ipxe', `echo Crowbar: ${ctx['node.name'] || ctx.mac} boots ${b.name}`];
  for (const [i, p] of b.initrds.entries()) lines.push(`initrd --name ${names[i]} ${ctx.provisioner}/${p}`);
  const initrdArgs = names.map((n) => `initrd=${n}`).join(' ');
  lines.push(`kernel ${ctx.provisioner}/${b.kernel} ${initrdArgs} ${render(b.args, ctx)}`.trimEnd());
  lines.push('boot');
  return `${lines.join('\n')}\n`;
}
