import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** A program and the Debian package that ships it. */
export interface DebianProgram {
  /** Paths where the program may be; the first that exists is used. */
  candidates: string[];
  pkg: string;
}

/** Several processes (test files, the launcher) may install at once: wait for dpkg's lock, not fail. */
const aptOptions = ['-o', 'DPkg::Lock::Timeout=300', '-o', 'Acquire::Retries=3'];

/**
 * Makes sure every listed program is there, installing the missing packages in one `apt-get install`
 * when we are root (running `apt-get update` first when the package lists are empty or the install
 * fails). Otherwise fails with one sentence naming the packages to install.
 */
export function ensureDebianPrograms(
  programs: DebianProgram[],
  why: string,
  log: (line: string) => void,
): void {
  const found = (p: DebianProgram) => p.candidates.some((c) => existsSync(c));
  const missing = [...new Set(programs.filter((p) => !found(p)).map((p) => p.pkg))];
  if (missing.length === 0) return;
  const list = missing.join(' ');
  if (process.getuid?.() !== 0)
    throw new Error(
      `${list} ${missing.length > 1 ? 'are' : 'is'} not installed: run \`sudo apt-get install ${list}\` (${why})`,
    );
  log(`installing the Debian package${missing.length > 1 ? 's' : ''} ${list} (${why}) …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) =>
    execFileSync('apt-get', [...aptOptions, ...args], { stdio: 'ignore', env, timeout: 600_000 });
  const install = () => apt(['install', '-y', '-q', '--no-install-recommends', ...missing]);
  try {
    install();
  } catch {
    try {
      apt(['update', '-q']);
      install();
    } catch (cause) {
      throw new Error(
        `apt-get could not install ${list}: run \`apt-get update && apt-get install ${list}\` (${why})`,
        {
          cause,
        },
      );
    }
  }
  const still = programs.filter((p) => !found(p));
  if (still.length > 0)
    throw new Error(`${still.map((p) => p.candidates[0]).join(', ')} still missing after installing ${list}`);
}

/** Finds one program, installing its package if needed (see ensureDebianPrograms). */
export function ensureDebianProgram(
  opts: DebianProgram & { why: string; log: (line: string) => void },
): string {
  ensureDebianPrograms([opts], opts.why, opts.log);
  return opts.candidates.find((c) => existsSync(c))!;
}

/**
 * Everything the test suite runs besides Node: sshd and its keys, fping, dig, ip, the DHCP clients
 * (busybox udhcpc, ISC dhclient), dnsmasq as a known-good peer, QEMU with real firmware and iPXE, and
 * Chromium for the web UI.
 */
export const testPrograms: DebianProgram[] = [
  { candidates: ['/usr/bin/busybox', '/bin/busybox'], pkg: 'busybox' },
  { candidates: ['/usr/sbin/dhclient', '/sbin/dhclient'], pkg: 'isc-dhcp-client' },
  { candidates: ['/usr/sbin/dnsmasq'], pkg: 'dnsmasq-base' },
  { candidates: ['/usr/bin/qemu-system-x86_64'], pkg: 'qemu-system-x86' },
  { candidates: ['/usr/lib/ipxe/qemu/pxe-virtio.rom'], pkg: 'ipxe-qemu' },
  { candidates: ['/usr/share/qemu/OVMF.fd', '/usr/share/ovmf/OVMF.fd'], pkg: 'ovmf' },
  { candidates: ['/usr/lib/ipxe/undionly.kpxe'], pkg: 'ipxe' },
  { candidates: ['/usr/bin/python3'], pkg: 'python3' },
  { candidates: ['/usr/sbin/sshd'], pkg: 'openssh-server' },
  { candidates: ['/usr/bin/ssh-keygen'], pkg: 'openssh-client' },
  { candidates: ['/usr/bin/fping', '/usr/sbin/fping'], pkg: 'fping' },
  { candidates: ['/usr/bin/dig'], pkg: 'bind9-dnsutils' },
  { candidates: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'], pkg: 'iproute2' },
  // The web UI's tests (test/ui-*.test.ts) drive Debian's Chromium through playwright-core.
  { candidates: ['/usr/bin/chromium'], pkg: 'chromium' },
];
