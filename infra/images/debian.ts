import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * The Debian side of the image builder: which packages (apt-cache), their .debs (apt-get download,
 * checked against apt's SHA256), unpacking them into a sysroot (dpkg-deb -x), and what the image needs
 * out of that sysroot: kernel modules with their dependencies, shared libraries of the binaries.
 */

/** A build that failed; the message ends with what to run. */
export class ImageBuildError extends Error {
  override name = 'ImageBuildError';
}

export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  sha256: string;
  size: number;
  section: string;
  depends: string[];
}

const aptOptions = ['-o', 'Acquire::Retries=3', '-o', 'APT::Sandbox::User=root'];

/** `apt-cache show` of the candidate versions; names apt does not know (virtual ones) are left out. */
function aptShow(names: string[]): DebPackage[] {
  let text: string;
  try {
    text = execFileSync('apt-cache', ['show', '--no-all-versions', ...names], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    text = String((e as { stdout?: unknown }).stdout ?? '');
  }
  return text
    .split(/\n\n+/)
    .filter((stanza) => stanza.trim())
    .map((stanza) => {
      const field = (f: string) => new RegExp(`^${f}: (.*)$`, 'm').exec(stanza)?.[1]?.trim() ?? '';
      const depends = [field('Pre-Depends'), field('Depends')]
        .flatMap((d) => d.split(','))
        .map((alt) =>
          alt
            .split('|')[0]!
            .trim()
            .replace(/\s*\(.*\)$/, '')
            .replace(/:\w+$/, ''),
        )
        .filter(Boolean);
      return {
        name: field('Package'),
        version: field('Version'),
        arch: field('Architecture'),
        sha256: field('SHA256'),
        size: Number(field('Size')),
        section: field('Section'),
        depends,
      };
    });
}

/**
 * The exact packages of the image: the kernel linux-image-amd64 depends on (never the cloud kernel:
 * it lacks most hardware drivers), the userland, and the shared-library packages (Section libs) these
 * depend on, recursively. Runs `apt-get update` once when apt knows none of them and we are root.
 */
export function resolveDebs(roots: string[], log: (l: string) => void): DebPackage[] {
  let meta = aptShow(['linux-image-amd64'])[0];
  if (!meta && process.getuid?.() === 0) {
    log('apt knows no linux-image-amd64: running apt-get update …');
    run('apt-get', [...aptOptions, 'update', '-q'], 'apt-get update', 'check the apt sources and network');
    meta = aptShow(['linux-image-amd64'])[0];
  }
  const kernel = meta?.depends.find((d) => /^linux-image-\d/.test(d));
  if (!kernel)
    throw new ImageBuildError(
      'apt-cache shows no linux-image-amd64 depending on a linux-image-<release>-amd64: run `apt-get update` (Debian 12 sources)',
    );
  // The whole Depends closure in one call, then one `show`: apt-cache takes ~0.5 s per call.
  const closure = run(
    'apt-cache',
    [
      'depends',
      '--recurse',
      ...['--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks'],
      ...['--no-replaces', '--no-enhances', ...roots],
    ],
    'apt-cache depends',
    'run `apt-get update` (Debian 12 sources)',
  )
    .split('\n')
    .filter((l) => /^[a-z0-9]/.test(l));
  const shown = new Map(aptShow([kernel, ...new Set(closure)]).map((p) => [p.name, p]));
  const wanted = new Set([kernel, ...roots]);
  const found = new Map<string, DebPackage>();
  const queue = [...roots];
  for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
    const p = shown.get(name);
    if (!p || found.has(name)) continue;
    found.set(name, p);
    queue.push(...p.depends.filter((d) => shown.get(d)?.section.match(/(^|\/)libs$/)));
  }
  const k = shown.get(kernel);
  if (k) found.set(kernel, k);
  const missing = [...wanted].filter((n) => !found.has(n));
  if (missing.length > 0)
    throw new ImageBuildError(
      `apt-cache knows no ${missing.join(', ')}: run \`apt-get update\` (Debian 12 sources)`,
    );
  const pkgs = [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
  log(`packages: ${pkgs.map((p) => `${p.name} ${p.version}`).join(', ')}`);
  return pkgs;
}

const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Each package's .deb in `dir` (checked against apt's SHA256), downloading the missing ones. */
export function downloadDebs(pkgs: DebPackage[], dir: string, log: (l: string) => void): string[] {
  mkdirSync(dir, { recursive: true });
  const fileOf = (p: DebPackage) => join(dir, `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`);
  const valid = (p: DebPackage, path: string) => existsSync(path) && sha256File(path) === p.sha256;
  const missing = pkgs.filter((p) => !valid(p, fileOf(p)));
  if (missing.length > 0) {
    const total = missing.reduce((n, p) => n + p.size, 0);
    log(`downloading ${missing.length} packages (${mb(total)}) with apt-get download …`);
    // Into a private directory first, so a killed download never leaves a partial .deb in the cache.
    const tmp = join(dir, `.download-${process.pid}-${randomBytes(3).toString('hex')}`);
    mkdirSync(tmp);
    try {
      const names = missing.map((p) => `${p.name}=${p.version}`);
      try {
        execFileSync('apt-get', [...aptOptions, 'download', ...names], {
          cwd: tmp,
          stdio: ['ignore', 'ignore', 'pipe'],
          timeout: 600_000,
        });
      } catch (cause) {
        throw new ImageBuildError(
          `apt-get download ${names.join(' ')} failed: run \`apt-get update\` and then \`npm run images\``,
          { cause },
        );
      }
      for (const p of missing) {
        const got = join(tmp, basename(fileOf(p)));
        if (!valid(p, got))
          throw new ImageBuildError(
            `${basename(got)} is missing or does not match apt's SHA256: run \`apt-get update\` and then \`npm run images\``,
          );
        renameSync(got, fileOf(p));
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return pkgs.map(fileOf);
}

/** Unpacks every .deb into `sysroot`. */
export function unpackDebs(debs: string[], sysroot: string, log: (l: string) => void): void {
  log(`unpacking ${debs.length} packages …`);
  mkdirSync(sysroot);
  for (const deb of debs) run('dpkg-deb', ['-x', deb, sysroot], `unpacking ${basename(deb)}`);
}

export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export function run(
  cmd: string,
  args: string[],
  what: string,
  fix = 'run `npm run images` to see it fail again',
): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (cause) {
    const stderr = String((cause as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')
      .pop();
    throw new ImageBuildError(`${what} failed (${stderr || (cause as Error).message}): ${fix}`, { cause });
  }
}

/**
 * Copies the module trees `trees.include` (paths under lib/modules/<release>/kernel) less `trees.skip`,
 * and everything they need (depends and softdeps), from the sysroot into `root`, then runs depmod.
 * Returns the number of modules.
 */
export function copyModules(
  sysroot: string,
  root: string,
  release: string,
  trees: { include: string[]; skip: string[] },
  log: (l: string) => void,
): number {
  const from = join(sysroot, 'lib/modules', release);
  if (!existsSync(from))
    throw new ImageBuildError(`${from} is missing from the kernel package: run \`npm run images\` again`);
  run('depmod', ['-b', sysroot, release], 'depmod over the whole kernel');
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(from, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod && rest !== undefined) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...deps.keys()].map((p) => [basename(p, '.ko').replace(/-/g, '_'), p]));
  const softdeps = new Map<string, string[]>();
  for (const line of readFileSync(join(from, 'modules.softdep'), 'utf8').split('\n')) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line);
    if (m)
      softdeps.set(
        m[1]!.replace(/-/g, '_'),
        m[2]!.split(/\s+/).filter((w) => !w.endsWith(':')),
      );
  }
  const inTree = (p: string, t: string) => p === `kernel/${t}` || p.startsWith(`kernel/${t}/`);
  const wanted = [...deps.keys()].filter(
    (p) => trees.include.some((t) => inTree(p, t)) && !trees.skip.some((t) => inTree(p, t)),
  );
  const chosen = new Set<string>();
  while (wanted.length > 0) {
    const p = wanted.pop()!;
    if (chosen.has(p)) continue;
    chosen.add(p);
    wanted.push(...(deps.get(p) ?? []));
    for (const name of softdeps.get(basename(p, '.ko').replace(/-/g, '_')) ?? []) {
      const soft = byName.get(name.replace(/-/g, '_'));
      if (soft) wanted.push(soft);
    }
  }
  const to = join(root, 'usr/lib/modules', release);
  let bytes = 0;
  for (const p of chosen) {
    mkdirSync(dirname(join(to, p)), { recursive: true });
    copyFileSync(join(from, p), join(to, p));
    bytes += statSync(join(to, p)).size;
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo'])
    copyFileSync(join(from, f), join(to, f));
  run('depmod', ['-b', root, release], 'depmod over the selected modules');
  log(`kernel ${release}: ${chosen.size} of ${deps.size} modules (${mb(bytes)})`);
  return chosen.size;
}

/** The libraries a binary loads, resolved by the packages' own loader inside the sysroot only. */
export function sharedLibraries(sysroot: string, binary: string): string[] {
  const libDirs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((d) => join(sysroot, d));
  const loader = join(sysroot, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
  const listing = run(
    loader,
    ['--library-path', libDirs.join(':'), '--list', binary],
    `listing the libraries of ${binary}`,
  );
  const libs: string[] = [];
  for (const line of listing.split('\n')) {
    const m = /^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
    if (!m) continue;
    const path = m[1]!.startsWith('/') ? loader : m[2]!;
    if (!path.startsWith(`${sysroot}/`))
      throw new ImageBuildError(
        `${basename(binary)} needs ${m[1]}, which no downloaded package holds (${m[2]}): add its package to userland in infra/images/discovery.ts`,
      );
    // Named by the soname the binary asks for; the copy follows symlinks.
    libs.push(m[1]!.startsWith('/') ? path : join(dirname(path), m[1]!));
  }
  return libs;
}
