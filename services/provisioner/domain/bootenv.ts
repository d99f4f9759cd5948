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
  /** The cluster's SSH public key (one `authorized_keys` line), for install templates. */
  'ssh_key',
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

/** What templates are rendered with; `ssh_key` is added where install templates are served. */
export type RenderContext = Record<Exclude<Placeholder, 'ssh_key'>, string> & { ssh_key?: string };

/** Plain substitution, for the provisioner's own files (join.sh); bootenv templates go through the checks below. */
export function render(t: string, ctx: RenderContext): string {
  return t.replace(placeholderRe, (_all, name: string) => ctx[name as Placeholder] ?? '');
}

export class BootenvError extends Error {}

/** A template refused to render because a value would not stay a value in it (the node's data is wrong). */
export class RenderError extends Error {
  constructor(
    message: string,
    readonly placeholder: Placeholder | null,
  ) {
    super(message);
  }
}

const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const url = /^https?:\/\/[A-Za-z0-9.:%[\]-]{1,262}(?:\/[A-Za-z0-9._~%/-]{0,1024})?$/;
const name = /^[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63}){0,126}$/;
/**
 * The form each value must have before it goes into a template (an empty value — an unknown machine,
 * no install requested — is always allowed). None of these forms can hold whitespace other than a
 * key's comment, quotes, backslashes, `$`, backticks, `;`, `#`, `{`, `}` or a newline, so a value
 * stays one word in a kernel line or shell command, one scalar in a quoted YAML string and one argument
 * of a kickstart command: a disk named `sda;reboot` or a hostname `a_b` is refused, not rendered.
 */
const valueForms: Record<Placeholder, { re: RegExp; what: string }> = {
  api: { re: url, what: 'an http(s) URL' },
  provisioner: { re: url, what: 'an http(s) URL' },
  image: { re: url, what: 'an http(s) URL' },
  server: { re: /^[A-Za-z0-9.:%[\]-]{1,255}$/, what: 'a host name or address' },
  token: { re: /^[A-Za-z0-9._-]{1,200}$/, what: 'a token (letters, digits, . _ -)' },
  mac: { re: /^[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}$/, what: 'a MAC address' },
  bootenv: { re: /^[a-z][a-z0-9._-]{0,62}$/, what: 'a bootenv name' },
  'node.name': { re: name, what: 'a node name (lower-case letters, digits, _ - and dots)' },
  'node.hostname': {
    re: new RegExp(`^${label}$`),
    what: 'a host name label (RFC 1123: letters, digits and inner hyphens, at most 63)',
  },
  'node.domain': { re: new RegExp(`^${label}(?:\\.${label})*$`), what: 'a DNS domain of RFC 1123 labels' },
  'node.id': { re: /^[1-9][0-9]{0,15}$/, what: 'a node id' },
  node_arg: { re: /^ crowbar\.node=[a-z0-9_.-]{1,255}$/, what: '` crowbar.node=<name>`' },
  disk: { re: /^[a-z][a-z0-9]{1,31}$/, what: 'a disk name like vda, sda or nvme0n1' },
  ssh_key: {
    re: /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{16,16384}={0,3}(?: [A-Za-z0-9@._+:=/ -]{0,255})?$/,
    what: 'one OpenSSH public key line (type, base64, a plain comment)',
  },
};

/** How a served template is checked after rendering, by its file name. */
export type TemplateKind = 'yaml' | 'text';
export const templateKind = (file: string): TemplateKind =>
  /^(?:user-data|meta-data|vendor-data|network-config)$|\.ya?ml$/.test(file) ? 'yaml' : 'text';

/**
 * Renders a bootenv template (`where` names it in errors) after checking every value it uses against
 * its form; a YAML template (cloud-init's user-data and meta-data) must also still parse as one YAML
 * document. Throws RenderError naming the placeholder, the value and the form it lacks.
 */
export function renderChecked(
  where: string,
  t: string,
  ctx: RenderContext,
  kind: TemplateKind = 'text',
): string {
  for (const m of t.matchAll(placeholderRe)) {
    const p = m[1] as Placeholder;
    const v = ctx[p] ?? '';
    const form = valueForms[p];
    if (v !== '' && !form.re.test(v))
      throw new RenderError(
        `${where}: {{${p}}} ${JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v)} is not ${form.what}; refusing to render`,
        p,
      );
  }
  const out = render(t, ctx);
  if (kind === 'yaml') {
    try {
      parse(out);
    } catch (cause) {
      throw new RenderError(`${where}: the rendered file is not one YAML document (${String(cause)})`, null);
    }
  }
  return out;
}

/** A bootenv's install template `file` rendered for a node (see renderChecked). */
export function renderTemplate(b: Bootenv, file: string, ctx: RenderContext): string {
  const t = b.templates[file];
  if (t === undefined) throw new RenderError(`bootenv ${b.name} has no template ${file}`, null);
  return renderChecked(`bootenv ${b.name} template ${file}`, t, ctx, templateKind(file));
}

/** The first key line of an `authorized_keys` text (what `{{ssh_key}}` renders), or '' when there is none. */
export function firstKeyLine(keys: string | null): string {
  for (const line of (keys ?? '').split('\n')) {
    const l = line.trim();
    if (l && !l.startsWith('#')) return l;
  }
  return '';
}

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
  if (b.ipxe !== undefined) return renderChecked(`bootenv ${b.name} ipxe`, b.ipxe, ctx);
  // The lines below put these in outside the bootenv's own templates.
  renderChecked(`bootenv ${b.name} script`, '{{provisioner}} {{node.name}} {{mac}}', ctx);
  const names = b.initrds.map((p) => p.split('/').pop()!);
  const lines = ['#!ipxe', `echo Crowbar: ${ctx['node.name'] || ctx.mac} boots ${b.name}`];
  for (const [i, p] of b.initrds.entries()) lines.push(`initrd --name ${names[i]} ${ctx.provisioner}/${p}`);
  const initrdArgs = names.map((n) => `initrd=${n}`).join(' ');
  const args = renderChecked(`bootenv ${b.name} args`, b.args, ctx);
  lines.push(`kernel ${ctx.provisioner}/${b.kernel} ${initrdArgs} ${args}`.trimEnd());
  lines.push('boot');
  return `${lines.join('\n')}\n`;
}
