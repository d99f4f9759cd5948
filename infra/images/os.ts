import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPrograms } from '../packages.js';
import { mb } from './debian.js';
import { defaultImageCache, ImageBuildError, pruneImages, withLock } from './discovery.js';

/**
 * The OS image provisioner-os-install writes to a node's disk: Debian bookworm (minbase) with Debian's
 * standard kernel and initramfs, systemd, OpenSSH, GRUB for BIOS and UEFI, curl, and ./os: DHCP on
 * every wired NIC (systemd-networkd), host keys made on first boot, and crowbar-join (re-register the
 * host key with the node's credential, then report alive). Built with mmdebstrap from Debian's mirror,
 * as a zstd-compressed tar; documentation, manuals and translations are left out. Cached machine-wide
 * like the discovery image, in a directory named by a hash of the package versions and of ./os.
 */

export interface OsImage {
  /** Its directory: <name>.tar.zst and manifest.json. */
  dir: string;
  /** The tarball, e.g. …/debian-12.tar.zst. */
  file: string;
  /** The OS name bootenvs use: `debian-12` (bootenv `debian-12-install`). */
  name: string;
  version: string;
  built: boolean;
  manifest: OsManifest;
}

export interface OsManifest {
  name: string;
  version: string;
  suite: string;
  packages: { name: string; version: string }[];
  bytes: number;
  unpackedBytes: number;
  buildSeconds: number;
  builtAt: string;
}

const name = 'debian-12';
const suite = 'bookworm';
/** What the installed machine has beyond minbase. */
const packages = [
  'linux-image-amd64',
  'initramfs-tools',
  'systemd-sysv',
  'udev',
  'kmod',
  'iproute2',
  'openssh-server',
  'grub-pc-bin',
  'grub-efi-amd64-bin',
  'grub2-common',
  'curl',
  'ca-certificates',
];
const osDir = fileURLToPath(new URL('./os/', import.meta.url));
/** crowbar-join and its unit: the same files the provisioner serves to machines joining by /join.sh. */
const joinDir = fileURLToPath(new URL('../../services/provisioner/join/', import.meta.url));
const joinFiles = ['crowbar-join', 'crowbar-join.service'].map((f) => join(joinDir, f));
const self = fileURLToPath(import.meta.url);

/** Candidate versions of the top-level packages, for the image's hash (apt-get update first if unknown). */
function candidates(log: (l: string) => void): { name: string; version: string }[] {
  const show = () => {
    try {
      return execFileSync('apt-cache', ['policy', ...packages], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      return '';
    }
  };
  let text = show();
  if (!/Candidate: \d/.test(text) && process.getuid?.() === 0) {
    log('apt knows none of the OS image packages: running apt-get update …');
    execFileSync('apt-get', ['-o', 'Acquire::Retries=3', 'update', '-q'], { stdio: 'ignore' });
    text = show();
  }
  const out: { name: string; version: string }[] = [];
  for (const m of text.matchAll(/^(\S+):\n\s+Installed: .*\n\s+Candidate: (\S+)/gm))
    out.push({ name: m[1]!, version: m[2]! });
  if (out.length !== packages.length || out.some((p) => p.version === '(none)'))
    throw new ImageBuildError(
      `apt has no candidate for some of ${packages.join(', ')}: run \`apt-get update\` (the OS image comes from Debian's mirror)`,
    );
  return out;
}

function inputHash(pkgs: { name: string; version: string }[]): string {
  const h = createHash('sha256').update(`crowbar-os-1 ${name} ${suite}\n`);
  for (const p of pkgs) h.update(`${p.name} ${p.version}\n`);
  for (const f of [self, ...joinFiles, ...readdirSync(osDir).map((f) => join(osDir, f))].sort())
    h.update(`${basename(f)} ${createHash('sha256').update(readFileSync(f)).digest('hex')}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Builds the OS image unless the cache has it; needs root (mmdebstrap's root mode) to build. */
export function ensureOsImage(opts: { cacheDir?: string; log?: (l: string) => void } = {}): OsImage {
  const log = opts.log ?? (() => {});
  const cache = opts.cacheDir ?? defaultImageCache();
  ensureDebianPrograms(
    [
      { candidates: ['/usr/bin/mmdebstrap'], pkg: 'mmdebstrap' },
      { candidates: ['/usr/bin/zstd'], pkg: 'zstd' },
    ],
    'the OS image is built with mmdebstrap and compressed with zstd',
    log,
  );
  const pkgs = candidates(log);
  const version = inputHash(pkgs);
  const dir = join(cache, `os-${name}-${version}`);
  const file = join(dir, `${name}.tar.zst`);
  const image = (built: boolean): OsImage => ({
    dir,
    file,
    name,
    version,
    built,
    manifest: JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as OsManifest,
  });
  const cached = () => existsSync(join(dir, 'manifest.json'));
  if (cached()) {
    try {
      utimesSync(dir, new Date(), new Date());
    } catch {}
    log(`OS image ${name} ${version}: reusing ${dir}`);
    return image(false);
  }
  if (process.getuid?.() !== 0)
    throw new ImageBuildError(`building the OS image needs root: run \`sudo npm run images\``);
  mkdirSync(cache, { recursive: true, mode: 0o755 });
  return withLock(join(cache, `.lock-os-${version}`), log, () => {
    if (cached()) return image(false);
    const started = performance.now();
    const work = join(cache, `.build-${version}-${process.pid}-${randomBytes(3).toString('hex')}`);
    mkdirSync(work);
    try {
      const tar = join(work, `${name}.tar`);
      log(`OS image ${name}: mmdebstrap ${suite} (minbase + ${packages.length} packages) from ${mirror()} …`);
      const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
      const hooks = [
        // No host keys or machine id in the image: every installed machine makes its own.
        'rm -f "$1"/etc/ssh/ssh_host_* "$1"/var/lib/dbus/machine-id',
        ': > "$1"/etc/machine-id',
        `install -m 0755 ${q(joinFiles[0]!)} "$1"/usr/local/sbin/crowbar-join`,
        `install -m 0644 ${q(joinFiles[1]!)} "$1"/etc/systemd/system/crowbar-join.service`,
        `install -m 0644 ${q(join(osDir, '50-crowbar.network'))} "$1"/etc/systemd/network/50-crowbar.network`,
        `install -D -m 0644 ${q(join(osDir, 'ssh-host-keys.conf'))} "$1"/etc/systemd/system/ssh.service.d/host-keys.conf`,
        'chroot "$1" systemctl enable systemd-networkd.service crowbar-join.service >/dev/null',
        'mkdir -p -m 0700 "$1"/root/.ssh "$1"/etc/crowbar',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log',
      ];
      try {
        execFileSync(
          'mmdebstrap',
          [
            '--quiet',
            '--variant=minbase',
            '--mode=root',
            '--format=tar',
            `--include=${packages.join(',')}`,
            '--aptopt=Acquire::Retries "3"',
            '--dpkgopt=path-exclude=/usr/share/doc/*',
            '--dpkgopt=path-include=/usr/share/doc/*/copyright',
            '--dpkgopt=path-exclude=/usr/share/man/*',
            '--dpkgopt=path-exclude=/usr/share/info/*',
            '--dpkgopt=path-exclude=/usr/share/locale/*',
            '--dpkgopt=path-include=/usr/share/locale/locale.alias',
            ...hooks.map((h) => `--customize-hook=${h}`),
            suite,
            tar,
            mirror(),
          ],
          { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000, maxBuffer: 16 * 1024 * 1024 },
        );
      } catch (cause) {
        const err = String((cause as { stderr?: unknown }).stderr ?? '')
          .trim()
          .split('\n')
          .slice(-3)
          .join(' / ');
        throw new ImageBuildError(
          `mmdebstrap could not build the OS image (${err || (cause as Error).message}): check that ${mirror()} is reachable, or set CROWBAR_DEBIAN_MIRROR`,
          { cause },
        );
      }
      const unpackedBytes = statSync(tar).size;
      log(`compressing ${mb(unpackedBytes)} with zstd …`);
      const out = join(work, 'out');
      mkdirSync(out);
      execFileSync('zstd', ['-q', '-T0', '-10', '--rm', tar, '-o', join(out, `${name}.tar.zst`)], {
        stdio: 'ignore',
      });
      const manifest: OsManifest = {
        name,
        version,
        suite,
        packages: pkgs,
        bytes: statSync(join(out, `${name}.tar.zst`)).size,
        unpackedBytes,
        buildSeconds: Math.round((performance.now() - started) / 100) / 10,
        builtAt: new Date().toISOString(),
      };
      writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      renameSync(out, dir);
      log(
        `built ${file} in ${manifest.buildSeconds} s: ${mb(manifest.bytes)} (${mb(unpackedBytes)} unpacked)`,
      );
      pruneImages(cache, dir, log, 'os');
      return image(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

const mirror = () => process.env.CROWBAR_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
