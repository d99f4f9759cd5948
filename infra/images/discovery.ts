import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPrograms } from '../packages.js';

/**
 * The discovery image (our Sledgehammer): Debian's standard kernel and an initramfs with its network
 * and storage modules, static busybox, bash, dropbear (+ OpenSSH's sftp-server, for the script jig) and
 * the agent in ./agent. Everything comes from Debian packages fetched with `apt-get download` and
 * unpacked with `dpkg-deb -x`; nothing is installed on the host except the tools that build it (kmod
 * for depmod, zstd). Images are cached machine-wide in a directory named by a hash of the package
 * versions and of these sources, so a changed input builds a new one and everything else reuses it.
 */

export interface DiscoveryImage {
  /** The image's directory: vmlinuz, initrd.img, manifest.json. */
  dir: string;
  kernel: string;
  initrd: string;
  /** Hash of the inputs; also in the image as /etc/crowbar-discovery-version. */
  version: string;
  /** True when this call built it, false when it was in the cache. */
  built: boolean;
  manifest: DiscoveryManifest;
}

export interface DiscoveryManifest {
  version: string;
  kernelRelease: string;
  packages: { name: string; version: string }[];
  modules: number;
  kernelBytes: number;
  initrdBytes: number;
  unpackedBytes: number;
  buildSeconds: number;
  builtAt: string;
}

export interface DiscoveryImageOptions {
  /** Default: $CROWBAR_IMAGE_CACHE, else /var/cache/crowbar/images. */
  cacheDir?: string;
  log?: (line: string) => void;
}

/** A build that failed; the message ends with what to run. */
export class ImageBuildError extends Error {
  override name = 'ImageBuildError';
}

export const defaultImageCache = () => process.env.CROWBAR_IMAGE_CACHE || '/var/cache/crowbar/images';

/** What runs in the image; their library packages are followed from Depends. */
const userland = ['busybox-static', 'bash', 'dropbear-bin', 'openssh-sftp-server'];
/** Module trees (under lib/modules/<release>/kernel) put in the image, with what they depend on. */
const moduleTrees = [
  'drivers/net',
  'drivers/ata',
  'drivers/scsi',
  'drivers/nvme',
  'drivers/block',
  'drivers/virtio',
  'drivers/md',
  'drivers/message',
  'drivers/hv',
  'drivers/pci/controller',
  'drivers/char/hw_random',
  'drivers/char/ipmi',
  'fs/ext4',
  'fs/fat',
  'fs/nls',
  'net/8021q',
  'crypto/crc32c_generic.ko',
  'arch/x86/crypto/crc32c-intel.ko',
];
/** Network hardware a server does not boot from (radios, serial lines, legacy LANs): half of drivers/net. */
const skippedTrees = [
  'wireless',
  'can',
  'wwan',
  'ieee802154',
  'hamradio',
  'arcnet',
  'fddi',
  'wan',
  'ppp',
  'slip',
  'plip',
].map((t) => `drivers/net/${t}`);
/** Every file in the initramfs gets this mtime, so equal inputs give an equal archive. */
const epoch = 1_672_531_200;
const agentDir = fileURLToPath(new URL('./agent/', import.meta.url));
const sources = [fileURLToPath(import.meta.url)];

const noLog = () => {};

export function ensureDiscoveryImage(opts: DiscoveryImageOptions = {}): DiscoveryImage {
  const log = opts.log ?? noLog;
  const cache = opts.cacheDir ?? defaultImageCache();
  ensureDebianPrograms(
    [
      { candidates: ['/usr/bin/apt-get'], pkg: 'apt' },
      { candidates: ['/usr/bin/dpkg-deb'], pkg: 'dpkg' },
      { candidates: ['/usr/sbin/depmod', '/sbin/depmod'], pkg: 'kmod' },
      { candidates: ['/usr/bin/zstd'], pkg: 'zstd' },
    ],
    'the discovery image builder runs depmod and zstd',
    log,
  );
  log('discovery image: resolving Debian packages …');
  const pkgs = resolveDebs(userland, log);
  const kernelPkg = pkgs.find((p) => p.name.startsWith('linux-image-'))!;
  const kernelRelease = kernelPkg.name.slice('linux-image-'.length);
  const version = inputHash(pkgs);
  const dir = join(cache, `discovery-${version}`);
  const image = (built: boolean): DiscoveryImage => ({
    dir,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    version,
    built,
    manifest: JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as DiscoveryManifest,
  });
  const cached = () => existsSync(join(dir, 'manifest.json'));
  if (cached()) {
    try {
      // Marks it recently used, for pruning; another user's cache may not allow it.
      utimesSync(dir, new Date(), new Date());
    } catch {}
    log(`discovery image ${version} (kernel ${kernelRelease}): reusing ${dir}`);
    return image(false);
  }
  try {
    mkdirSync(cache, { recursive: true, mode: 0o755 });
    accessSync(cache, constants.W_OK);
  } catch (cause) {
    throw new ImageBuildError(
      `cannot write the image cache ${cache}: set CROWBAR_IMAGE_CACHE to a writable directory, or run \`sudo npm run images\``,
      { cause },
    );
  }
  return withLock(join(cache, `.lock-discovery-${version}`), log, () => {
    if (cached()) return image(false);
    const started = performance.now();
    const work = join(cache, `.build-${version}-${process.pid}-${randomBytes(3).toString('hex')}`);
    mkdirSync(work);
    try {
      const debs = downloadDebs(pkgs, join(cache, 'debs'), log);
      log(`unpacking ${debs.length} packages …`);
      const sysroot = join(work, 'sysroot');
      mkdirSync(sysroot);
      for (const deb of debs) run('dpkg-deb', ['-x', deb, sysroot], `unpacking ${basename(deb)}`);
      const root = join(work, 'root');
      const modules = assembleRoot(sysroot, root, kernelRelease, version, log);
      const out = join(work, 'out');
      mkdirSync(out);
      log('writing the initramfs (cpio newc) …');
      const cpio = join(work, 'initrd.cpio');
      const unpackedBytes = writeCpio(root, cpio);
      log(`compressing ${mb(unpackedBytes)} with zstd -9 …`);
      run('zstd', ['-q', '-9', '-T0', '-f', cpio, '-o', join(out, 'initrd.img')], 'zstd');
      copyFileSync(join(sysroot, 'boot', `vmlinuz-${kernelRelease}`), join(out, 'vmlinuz'));
      const manifest: DiscoveryManifest = {
        version,
        kernelRelease,
        packages: pkgs.map((p) => ({ name: p.name, version: p.version })),
        modules,
        kernelBytes: statSync(join(out, 'vmlinuz')).size,
        initrdBytes: statSync(join(out, 'initrd.img')).size,
        unpackedBytes,
        buildSeconds: Math.round((performance.now() - started) / 100) / 10,
        builtAt: new Date().toISOString(),
      };
      writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      renameSync(out, dir);
      log(
        `built ${dir} in ${manifest.buildSeconds} s: kernel ${mb(manifest.kernelBytes)}, initrd ${mb(manifest.initrdBytes)} (${mb(unpackedBytes)} unpacked, ${modules} modules)`,
      );
      pruneImages(cache, dir, log);
      return image(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

interface DebPackage {
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
function resolveDebs(roots: string[], log: (l: string) => void): DebPackage[] {
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
function downloadDebs(pkgs: DebPackage[], dir: string, log: (l: string) => void): string[] {
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

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function run(
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

function inputHash(pkgs: DebPackage[]): string {
  const h = createHash('sha256').update('crowbar-discovery-1\n');
  for (const p of pkgs) h.update(`${p.name} ${p.version} ${p.arch} ${p.sha256}\n`);
  const files = [...sources, ...readdirSync(agentDir).map((f) => join(agentDir, f))].sort();
  for (const f of files)
    h.update(`${basename(f)} ${createHash('sha256').update(readFileSync(f)).digest('hex')}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Waits (up to 15 min) while another live process builds the same image, then runs `fn` holding the lock. */
function withLock<T>(lock: string, log: (l: string) => void, fn: () => T): T {
  const deadline = Date.now() + 15 * 60_000;
  let said = false;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new ImageBuildError(
          `cannot create ${lock}: set CROWBAR_IMAGE_CACHE to a writable directory, or run \`sudo npm run images\``,
          { cause },
        );
      let holder = 0;
      try {
        holder = Number(readFileSync(lock, 'utf8').trim());
      } catch {
        continue; // released between our two calls
      }
      if (!pidAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new ImageBuildError(
          `process ${holder} has held ${lock} for 15 minutes: stop it or remove the file`,
        );
      if (!said) log(`waiting for process ${holder}, which is building the same image …`);
      said = true;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Keeps the four most recently used images; removes older ones and builds whose process is gone. */
function pruneImages(cache: string, keep: string, log: (l: string) => void) {
  const entries = readdirSync(cache);
  for (const e of entries) {
    const m = /^\.build-[0-9a-f]+-(\d+)-/.exec(e);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(cache, e), { recursive: true, force: true });
  }
  const images = entries
    .filter((e) => e.startsWith('discovery-') && join(cache, e) !== keep)
    .map((e) => ({ path: join(cache, e), used: statSync(join(cache, e)).mtimeMs }))
    .sort((a, b) => b.used - a.used);
  for (const old of images.slice(3)) {
    log(`removing the older image ${old.path}`);
    rmSync(old.path, { recursive: true, force: true });
  }
}

/** Lays out the initramfs tree (usr-merged) in `root`; returns the number of kernel modules. */
function assembleRoot(
  sysroot: string,
  root: string,
  release: string,
  version: string,
  log: (l: string) => void,
) {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'usr/lib/openssh'])
    mkdirSync(join(root, d), { recursive: true });
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
  ] as const)
    symlinkSync(target, join(root, link));
  for (const d of ['dev', 'proc', 'sys', 'run', 'mnt', 'etc/dropbear', 'var/log', 'usr/lib/crowbar/agent'])
    mkdirSync(join(root, d), { recursive: true });
  mkdirSync(join(root, 'tmp'), { mode: 0o1777 });
  chmodSync(join(root, 'tmp'), 0o1777);
  mkdirSync(join(root, 'root/.ssh'), { recursive: true });
  chmodSync(join(root, 'root'), 0o700);
  chmodSync(join(root, 'root/.ssh'), 0o700);
  symlinkSync('../run', join(root, 'var/run'));

  const modules = copyModules(sysroot, root, release, log);

  log('adding busybox, bash, dropbear, sftp-server and their libraries …');
  const place = (from: string, to: string, mode = 0o755) => {
    mkdirSync(dirname(join(root, to)), { recursive: true });
    copyFileSync(join(sysroot, from), join(root, to));
    chmodSync(join(root, to), mode);
  };
  place('bin/busybox', 'usr/bin/busybox');
  const applets = run(join(sysroot, 'bin/busybox'), ['--list-full'], 'busybox --list-full').split('\n');
  for (const a of applets.filter(Boolean)) {
    const at = join(root, a.replace(/^(s?bin)\//, 'usr/$1/'));
    if (!existsSync(at)) symlinkSync('/usr/bin/busybox', at);
  }
  const dynamic: [string, string][] = [
    ['bin/bash', 'usr/bin/bash'],
    ['usr/sbin/dropbear', 'usr/sbin/dropbear'],
    ['usr/bin/dropbearkey', 'usr/bin/dropbearkey'],
    ['usr/lib/openssh/sftp-server', 'usr/lib/openssh/sftp-server'],
  ];
  for (const [from, to] of dynamic) {
    place(from, to);
    for (const lib of sharedLibraries(sysroot, join(sysroot, from)))
      place(lib.slice(sysroot.length + 1), `usr/lib/x86_64-linux-gnu/${basename(lib)}`);
  }
  symlinkSync('../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', join(root, 'usr/lib64/ld-linux-x86-64.so.2'));
  // Where Debian's dropbear looks for the SFTP subsystem.
  symlinkSync('openssh/sftp-server', join(root, 'usr/lib/sftp-server'));

  const etc = (name: string, text: string, mode = 0o644) => {
    writeFileSync(join(root, 'etc', name), text, { mode });
    chmodSync(join(root, 'etc', name), mode);
  };
  etc(
    'passwd',
    'root:*:0:0:root:/root:/bin/bash\nnobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  etc('group', 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  etc('shells', '/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n');
  etc('hosts', '127.0.0.1 localhost\n::1 localhost\n');
  etc('profile', 'export PATH=/usr/sbin:/usr/bin\n');
  etc('crowbar-discovery-version', `${version}\n`);
  copyFileSync(join(agentDir, 'inittab'), join(root, 'etc/inittab'));
  for (const f of readdirSync(agentDir).filter((f) => f !== 'init' && f !== 'inittab')) {
    copyFileSync(join(agentDir, f), join(root, 'usr/lib/crowbar/agent', f));
    chmodSync(join(root, 'usr/lib/crowbar/agent', f), f.endsWith('.sh') ? 0o644 : 0o755);
  }
  copyFileSync(join(agentDir, 'init'), join(root, 'init'));
  chmodSync(join(root, 'init'), 0o755);
  return modules;
}

/** Copies the selected module trees and everything they need (depends and softdeps), then runs depmod. */
function copyModules(sysroot: string, root: string, release: string, log: (l: string) => void): number {
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
    (p) => moduleTrees.some((t) => inTree(p, t)) && !skippedTrees.some((t) => inTree(p, t)),
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
function sharedLibraries(sysroot: string, binary: string): string[] {
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

/**
 * Writes `root` as a cpio "newc" archive, plus /dev/console (the kernel opens it before /init runs),
 * owned by root with one mtime, in name order: no privileges needed and equal trees give equal bytes.
 */
function writeCpio(root: string, file: string): number {
  const fd = openSync(file, 'w');
  let ino = 1;
  let bytes = 0;
  const put = (b: Buffer) => {
    writeSync(fd, b);
    bytes += b.length;
  };
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const nlink = name === 'TRAILER!!!' ? 1 : (mode & 0o170000) === 0o040000 ? 2 : 1;
    const fields = [
      name === 'TRAILER!!!' ? 0 : ino++,
      mode,
      0,
      0,
      nlink,
      epoch,
      data.length,
      0,
      0,
      ...rdev,
      nameBuf.length,
      0,
    ];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    put(Buffer.from(header, 'ascii'));
    put(nameBuf);
    put(pad(110 + nameBuf.length));
    put(data);
    put(pad(data.length));
  };
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isSymbolicLink()) entry(path, st.mode, Buffer.from(readlinkSync(join(root, path))));
      else if (st.isDirectory()) {
        entry(path, st.mode, Buffer.alloc(0));
        walk(path);
      } else entry(path, st.mode, readFileSync(join(root, path)));
    }
  };
  try {
    walk('');
    entry('dev/console', 0o020600, Buffer.alloc(0), [5, 1]);
    entry('TRAILER!!!', 0, Buffer.alloc(0));
  } finally {
    closeSync(fd);
  }
  return bytes;
}
