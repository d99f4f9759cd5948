import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPrograms } from '../packages.js';
import { writeInitramfs } from './cpio.js';
import {
  copyModules,
  type DebPackage,
  downloadDebs,
  ImageBuildError,
  mb,
  resolveDebs,
  run,
  sharedLibraries,
  unpackDebs,
} from './debian.js';

export { ImageBuildError };

/**
 * The discovery image (our Sledgehammer): Debian's standard kernel and an initramfs with its network
 * and storage modules, static busybox, bash, dropbear (+ OpenSSH's sftp-server, for the script jig) and
 * the agent in ./agent. Everything comes from Debian packages fetched with `apt-get download` and
 * unpacked with `dpkg-deb -x`; nothing is installed on the host except the tools that build it (kmod
 * for depmod, zstd). Images are cached machine-wide in a directory named by a hash of the package
 * versions, of the builder's sources (this file, ./debian.ts: the packages, ./cpio.ts: the archive) and
 * of the agent, so a changed input builds a new one and everything else reuses it.
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

export const defaultImageCache = () => process.env.CROWBAR_IMAGE_CACHE || '/var/cache/crowbar/images';

/**
 * What runs in the image; their library packages are followed from Depends. The installer
 * (bootenv <os>-install) partitions with sfdisk, makes file systems with mke2fs and mkfs.fat, and
 * unpacks the OS image with zstd and GNU tar.
 */
const userland = [
  'busybox-static',
  'bash',
  'dropbear-bin',
  'openssh-sftp-server',
  'fdisk',
  'e2fsprogs',
  'dosfstools',
  'zstd',
  'tar',
];
/** Dynamically linked programs copied with their libraries: [path in a package (or usr/ of it), path in the image]. */
const programs: [string, string][] = [
  ['bin/bash', 'usr/bin/bash'],
  ['usr/sbin/dropbear', 'usr/sbin/dropbear'],
  ['usr/bin/dropbearkey', 'usr/bin/dropbearkey'],
  ['usr/lib/openssh/sftp-server', 'usr/lib/openssh/sftp-server'],
  ['sbin/sfdisk', 'usr/sbin/sfdisk'],
  ['sbin/mke2fs', 'usr/sbin/mke2fs'],
  ['sbin/mkfs.fat', 'usr/sbin/mkfs.fat'],
  ['usr/bin/zstd', 'usr/bin/zstd'],
  ['bin/tar', 'usr/bin/tar'],
];
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
const agentDir = fileURLToPath(new URL('./agent/', import.meta.url));
/** The builder's own files: an edit to any of them builds a new image. */
const self = fileURLToPath(import.meta.url);
const sources = ['discovery', 'debian', 'cpio'].map((f) => join(dirname(self), `${f}${extname(self)}`));

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
      const sysroot = join(work, 'sysroot');
      unpackDebs(debs, sysroot, log);
      const root = join(work, 'root');
      const modules = assembleRoot(sysroot, root, kernelRelease, version, log);
      const out = join(work, 'out');
      mkdirSync(out);
      const unpackedBytes = writeInitramfs(root, join(work, 'initrd.cpio'), join(out, 'initrd.img'), log);
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

function inputHash(pkgs: DebPackage[]): string {
  const h = createHash('sha256').update('crowbar-discovery-1\n');
  for (const p of pkgs) h.update(`${p.name} ${p.version} ${p.arch} ${p.sha256}\n`);
  const files = [...sources, ...readdirSync(agentDir).map((f) => join(agentDir, f))].sort();
  for (const f of files)
    h.update(`${basename(f)} ${createHash('sha256').update(readFileSync(f)).digest('hex')}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Waits (up to 15 min) while another live process builds the same image, then runs `fn` holding the lock. */
export function withLock<T>(lock: string, log: (l: string) => void, fn: () => T): T {
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

/** Keeps the four most recently used images of a kind; removes older ones and builds whose process is gone. */
export function pruneImages(cache: string, keep: string, log: (l: string) => void, kind = 'discovery') {
  const entries = readdirSync(cache);
  for (const e of entries) {
    const m = /^\.build-[0-9a-f]+-(\d+)-/.exec(e);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(cache, e), { recursive: true, force: true });
  }
  const images = entries
    .filter((e) => e.startsWith(`${kind}-`) && join(cache, e) !== keep)
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

  const modules = copyModules(sysroot, root, release, { include: moduleTrees, skip: skippedTrees }, log);

  log("adding busybox, bash, dropbear, sftp-server, the installer's tools and their libraries …");
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
  for (const [pkgPath, to] of programs) {
    // Packages not yet usr-merged ship /sbin/x, merged ones /usr/sbin/x.
    const from = existsSync(join(sysroot, pkgPath)) ? pkgPath : `usr/${pkgPath}`;
    if (!existsSync(join(sysroot, from)))
      throw new ImageBuildError(
        `no ${pkgPath} in the unpacked packages: check userland in infra/images/discovery.ts`,
      );
    // Busybox's applets of the same names (tar, …) give way to the real programs.
    rmSync(join(root, to), { force: true });
    place(from, to);
    for (const lib of sharedLibraries(sysroot, join(sysroot, from)))
      place(lib.slice(sysroot.length + 1), `usr/lib/x86_64-linux-gnu/${basename(lib)}`);
  }
  for (const [link, to] of [
    ['usr/sbin/mkfs.ext4', 'mke2fs'],
    ['usr/sbin/mkfs.vfat', 'mkfs.fat'],
    ['usr/bin/unzstd', 'zstd'],
  ] as const) {
    rmSync(join(root, link), { force: true });
    symlinkSync(to, join(root, link));
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
  copyFileSync(join(sysroot, 'etc/mke2fs.conf'), join(root, 'etc/mke2fs.conf'));
  copyFileSync(join(agentDir, 'inittab'), join(root, 'etc/inittab'));
  for (const f of readdirSync(agentDir).filter((f) => f !== 'init' && f !== 'inittab')) {
    copyFileSync(join(agentDir, f), join(root, 'usr/lib/crowbar/agent', f));
    chmodSync(join(root, 'usr/lib/crowbar/agent', f), f.endsWith('.sh') ? 0o644 : 0o755);
  }
  copyFileSync(join(agentDir, 'init'), join(root, 'init'));
  chmodSync(join(root, 'init'), 0o755);
  return modules;
}
