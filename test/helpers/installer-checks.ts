import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ensureTool, toolPath } from './dig.js';

/**
 * Validators for rendered OS installer files whose installs cannot run here: cloud-init's own schema
 * check for cloud-config, a zod schema of the Ubuntu autoinstall (v1) keys our bootenv uses, and a strict
 * parser of the kickstart commands it emits (Debian ships no pykickstart, so no `ksvalidator`).
 */

/** `cloud-init schema --config-file` (Debian's cloud-init, installed when missing): null when valid, else its complaint. */
export function cloudInitSchemaError(dir: string, name: string, text: string): string | null {
  ensureTool('cloud-init', 'cloud-init');
  const file = join(dir, name);
  writeFileSync(file, text);
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], {
    encoding: 'utf8',
    env: { PATH: toolPath(), LANG: 'C.UTF-8' },
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return r.status === 0 ? null : `${r.stdout}${r.stderr}`.trim();
}

/** `sh -n`: null when the text is valid POSIX shell syntax, else dash's complaint. */
export function shellSyntaxError(script: string): string | null {
  const r = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
  return r.status === 0 ? null : r.stderr.trim();
}

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const fqdn = z
  .string()
  .max(253)
  .refine((s) => s.split('.').every((l) => label.test(l)), 'must be RFC 1123 labels');
const disk = z.string().regex(/^[a-z][a-z0-9]{1,31}$/);
const sshKey = z.string().regex(/^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/]+={0,3}(?: .*)?$/);

/** Subiquity's disk match spec (the keys it documents; `path` is a glob on the device path). */
const diskMatch = z
  .object({
    path: z.string().regex(/^\/dev\/[a-z][a-z0-9]{1,31}$/),
    serial: z.string(),
    model: z.string(),
    vendor: z.string(),
    ssd: z.boolean(),
    size: z.enum(['smallest', 'largest']),
  })
  .partial()
  .strict()
  .refine((m) => Object.keys(m).length > 0, 'needs at least one key');

/** The `autoinstall:` section, version 1, as far as our bootenv uses it; unknown keys are errors. */
export const autoinstallSchema = z
  .object({
    version: z.literal(1),
    locale: z.string().regex(/^[A-Za-z_]+\.UTF-8$/),
    keyboard: z
      .object({ layout: z.string().min(1), variant: z.string(), toggle: z.string().nullable() })
      .partial({
        variant: true,
        toggle: true,
      }),
    timezone: z.string().regex(/^[A-Za-z_]+(?:\/[A-Za-z_+-]+)*$/),
    identity: z
      .object({
        hostname: z.string().regex(label),
        username: z.string().regex(/^[a-z_][a-z0-9_-]*$/),
        password: z.string().min(1),
        realname: z.string(),
      })
      .partial({ realname: true })
      .strict(),
    ssh: z
      .object({
        'install-server': z.boolean(),
        'allow-pw': z.boolean(),
        'authorized-keys': z.array(sshKey),
      })
      .partial({ 'authorized-keys': true })
      .strict(),
    storage: z
      .object({
        layout: z
          .object({
            name: z.enum(['lvm', 'direct', 'zfs']),
            match: diskMatch,
            'sizing-policy': z.enum(['scaled', 'all']),
            password: z.string(),
          })
          .partial({ match: true, 'sizing-policy': true, password: true })
          .strict(),
      })
      .strict(),
    packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/)),
    /** Cloud-config for the installed system (checked separately with cloud-init's schema). */
    'user-data': z.record(z.string(), z.unknown()),
    'late-commands': z.array(z.union([z.string().min(1), z.array(z.string()).min(1)])),
    shutdown: z.enum(['reboot', 'poweroff']),
  })
  .partial()
  .strict()
  .refine((a) => a.version === 1, { message: 'version 1 is required', path: ['version'] })
  .refine((a) => a.identity !== undefined || a['user-data'] !== undefined, {
    message: 'needs identity or user-data (subiquity refuses an install with neither)',
  });
export type Autoinstall = z.infer<typeof autoinstallSchema>;

/** NoCloud's meta-data: the instance id and the host name. */
export const metaDataSchema = z
  .object({ 'instance-id': z.string().min(1), 'local-hostname': z.string().regex(label) })
  .partial({ 'local-hostname': true })
  .strict();

export interface KickstartCommand {
  line: number;
  name: string;
  options: Record<string, string | true>;
  args: string[];
}
export interface Kickstart {
  commands: Map<string, KickstartCommand>;
  packages: string[];
  post: { options: Record<string, string | true>; body: string }[];
}

export class KickstartError extends Error {}

/** One kickstart line split as pykickstart does (shlex: whitespace, single and double quotes). */
function words(line: string, at: number): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  let quote: '"' | "'" | null = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= '';
    } else if (/\s/.test(ch)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else if (ch === '\\' || ch === '`' || ch === '$' || ch === ';') {
      throw new KickstartError(`line ${at}: ${JSON.stringify(ch)} outside quotes`);
    } else cur = (cur ?? '') + ch;
  }
  if (quote) throw new KickstartError(`line ${at}: unterminated ${quote}`);
  if (cur !== null) out.push(cur);
  return out;
}

type Value = 'flag' | RegExp | ((v: string) => boolean);
interface CommandSpec {
  options: Record<string, Value>;
  required?: string[];
  /** How many positional arguments and their form. */
  args?: { count: number; form: (v: string) => boolean };
}
const disks = (v: string) => v.split(',').every((d) => disk.safeParse(d).success);
const specs: Record<string, CommandSpec> = {
  text: { options: {} },
  lang: { options: {}, args: { count: 1, form: (v) => /^[a-z]{2}_[A-Z]{2}\.UTF-8$/.test(v) } },
  keyboard: { options: { '--vckeymap': /^[a-z0-9-]+$/, '--xlayouts': /^[a-z]+(?:,[a-z]+)*$/ } },
  timezone: {
    options: { '--utc': 'flag' },
    args: { count: 1, form: (v) => /^[A-Za-z_]+(\/[A-Za-z_+-]+)*$/.test(v) },
  },
  network: {
    options: {
      '--bootproto': /^(dhcp|bootp|static|ibft)$/,
      '--device': /^(link|bootif|ibft|[a-z][a-z0-9]{1,14}|([0-9a-f]{2}:){5}[0-9a-f]{2})$/,
      '--activate': 'flag',
      '--onboot': /^(yes|no)$/,
      '--hostname': (v) => fqdn.safeParse(v).success,
    },
    required: ['--bootproto'],
  },
  rootpw: { options: { '--lock': 'flag' }, required: ['--lock'] },
  sshkey: {
    options: { '--username': /^[a-z_][a-z0-9_-]*$/ },
    required: ['--username'],
    args: { count: 1, form: (v) => sshKey.safeParse(v).success },
  },
  ignoredisk: { options: { '--only-use': disks }, required: ['--only-use'] },
  zerombr: { options: {} },
  clearpart: { options: { '--all': 'flag', '--initlabel': 'flag', '--drives': disks } },
  bootloader: { options: { '--boot-drive': (v) => disk.safeParse(v).success } },
  autopart: { options: { '--type': /^(lvm|plain|btrfs|thinp)$/ } },
  firstboot: { options: { '--disable': 'flag' } },
  selinux: { options: { '--enforcing': 'flag' } },
  firewall: { options: { '--enabled': 'flag', '--service': /^[a-z0-9-]+(,[a-z0-9-]+)*$/ } },
  services: { options: { '--enabled': /^[a-z0-9@._-]+(,[a-z0-9@._-]+)*$/ } },
  reboot: { options: {} },
};
const postOptions: Record<string, Value> = {
  '--erroronfail': 'flag',
  '--log': /^\/[A-Za-z0-9._/-]+$/,
  '--nochroot': 'flag',
};

function options(spec: Record<string, Value>, ws: string[], at: number, name: string) {
  const opts: Record<string, string | true> = {};
  const args: string[] = [];
  for (const w of ws) {
    if (!w.startsWith('--')) {
      args.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const key = eq < 0 ? w : w.slice(0, eq);
    const form = spec[key];
    if (form === undefined) throw new KickstartError(`line ${at}: ${name} has no option ${key}`);
    if (key in opts) throw new KickstartError(`line ${at}: ${name} ${key} given twice`);
    if (form === 'flag') {
      if (eq >= 0) throw new KickstartError(`line ${at}: ${name} ${key} takes no value`);
      opts[key] = true;
    } else {
      const v = eq < 0 ? '' : w.slice(eq + 1);
      const ok = typeof form === 'function' ? form(v) : form.test(v);
      if (!ok)
        throw new KickstartError(`line ${at}: ${name} ${key}=${JSON.stringify(v)} is not a valid value`);
      opts[key] = v;
    }
  }
  return { opts, args };
}

/**
 * Parses a kickstart strictly: only the commands and options listed above, each command once, every
 * section closed by %end, %packages lines package names or groups. Throws KickstartError naming the line.
 */
export function parseKickstart(text: string): Kickstart {
  const ks: Kickstart = { commands: new Map(), packages: [], post: [] };
  const lines = text.split('\n');
  let section: {
    kind: 'packages' | 'post';
    start: number;
    body: string[];
    options: Record<string, string | true>;
  } | null = null;
  for (const [i, raw] of lines.entries()) {
    const at = i + 1;
    const line = raw.trim();
    if (section) {
      if (line === '%end') {
        if (section.kind === 'post')
          ks.post.push({ options: section.options, body: `${section.body.join('\n')}\n` });
        section = null;
      } else if (line.startsWith('%'))
        throw new KickstartError(`line ${at}: ${line} inside the section of line ${section.start}`);
      else if (section.kind === 'packages') {
        if (line && !line.startsWith('#')) {
          if (!/^(@\^?[a-z0-9-]+|-?[a-z0-9][a-z0-9+._-]*)$/.test(line))
            throw new KickstartError(`line ${at}: ${JSON.stringify(line)} is not a package or group`);
          ks.packages.push(line);
        }
      } else section.body.push(raw);
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const [name = '', ...rest] = words(line, at);
    if (name === '%packages' || name === '%post') {
      const kind = name === '%packages' ? 'packages' : 'post';
      if (kind === 'packages' && rest.length)
        throw new KickstartError(`line ${at}: %packages takes no options here`);
      if (kind === 'packages' && ks.packages.length)
        throw new KickstartError(`line ${at}: a second %packages`);
      section = { kind, start: at, body: [], options: options(postOptions, rest, at, name).opts };
      continue;
    }
    if (name.startsWith('%')) throw new KickstartError(`line ${at}: unknown section ${name}`);
    const spec = specs[name];
    if (!spec) throw new KickstartError(`line ${at}: unknown command ${name}`);
    if (ks.commands.has(name)) throw new KickstartError(`line ${at}: ${name} given twice`);
    const { opts, args } = options(spec.options, rest, at, name);
    for (const r of spec.required ?? [])
      if (!(r in opts)) throw new KickstartError(`line ${at}: ${name} needs ${r}`);
    const want = spec.args?.count ?? 0;
    if (args.length !== want)
      throw new KickstartError(`line ${at}: ${name} takes ${want} argument(s), got ${args.length}`);
    for (const a of args)
      if (!spec.args!.form(a))
        throw new KickstartError(`line ${at}: ${name} argument ${JSON.stringify(a)} is not valid`);
    ks.commands.set(name, { line: at, name, options: opts, args });
  }
  if (section) throw new KickstartError(`the section of line ${section.start} has no %end`);
  // Only the chosen disk is touched: the disks named by ignoredisk, clearpart and bootloader agree.
  const only = ks.commands.get('ignoredisk')?.options['--only-use'];
  for (const [cmd, opt] of [
    ['clearpart', '--drives'],
    ['bootloader', '--boot-drive'],
  ] as const) {
    const v = ks.commands.get(cmd)?.options[opt];
    if (v !== undefined && v !== only)
      throw new KickstartError(`${cmd} ${opt}=${String(v)} is not ignoredisk's ${String(only)}`);
  }
  return ks;
}
