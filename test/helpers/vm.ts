import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { type DebianProgram, ensureDebianPrograms } from '../../infra/packages.js';

/**
 * Real-firmware virtual machines for tests: QEMU under software emulation (KVM guests hang on these
 * machines), SeaBIOS or OVMF, whose NIC option ROM is iPXE, on a Linux bridge in the root namespace
 * so services started by the test reach the VMs directly. The bridge holds only addresses from
 * `vmRange`; there is no NAT and no forwarding, so VM traffic ends at the bridge.
 *
 * Every link this module makes is named `cbvm…` and carries an alias naming the process that owns it;
 * links whose owner is gone (a test run that was killed) are removed, with any QEMU still holding
 * them, before a new bridge or VM is made. QEMU gets SIGKILL when its parent dies, so a killed worker
 * does not leave VMs behind.
 */

/** The only addresses VM bridges may carry: each bridge a /24 (or smaller) inside this range. */
export const vmRange = { network: '198.18.104.0', prefix: 21 };
/** The largest subnet one bridge may take. */
const largestBridgePrefix = 24;

export const vmPrograms: DebianProgram[] = [
  { candidates: ['/usr/bin/qemu-system-x86_64'], pkg: 'qemu-system-x86' },
  { candidates: ['/usr/lib/ipxe/qemu/pxe-virtio.rom'], pkg: 'ipxe-qemu' },
  { candidates: ['/usr/share/qemu/OVMF.fd'], pkg: 'ovmf' },
  { candidates: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'], pkg: 'iproute2' },
];

export function ensureVmPrograms(log: (l: string) => void): void {
  ensureDebianPrograms(vmPrograms, 'the VM tests boot real firmware under QEMU', log);
}

export interface VmBridge {
  name: string;
  /** The root namespace's address on the bridge, without prefix length (services listen here). */
  address: string;
  prefix: number;
  /** Kills every VM booted on this bridge, removes their taps and the bridge; safe to call twice. */
  cleanup(): void;
}

export interface Vm {
  mac: string;
  firmware: 'bios' | 'uefi';
  pid: number;
  /** Everything the serial console printed so far (last 4 MB): escape sequences and CRs removed, backspaces applied. */
  serial(): string;
  /** Resolves with the first match in serial(); rejects with a VmWaitError (console tail) on timeout or exit. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** QEMU's exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGKILL by PID, then removes the tap; resolves when QEMU is gone. */
  kill(): Promise<void>;
}

export class VmWaitError extends Error {
  override name = 'VmWaitError';
  constructor(
    readonly reason: 'timeout' | 'exited',
    readonly pattern: RegExp,
    readonly tail: string,
  ) {
    super(`VM console did not show ${pattern} (${reason}); console tail:\n${tail}`);
  }
}

const linkPrefix = 'cbvm';
const ovmf = '/usr/share/qemu/OVMF.fd';
const serialLimit = 4 * 1024 * 1024;

const ip = (args: string[]) =>
  execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });

const tryIp = (args: string[]) => {
  try {
    ip(args);
  } catch {
    // already gone
  }
};

/** A process's start time in clock ticks, so a reused PID is not mistaken for the owner. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; fields after the command name (which may hold spaces) start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

const ownerAlias = () => `crowbar-vm owner=${process.pid}:${startTime(process.pid)}`;

function ownerAlive(alias: string | undefined): boolean {
  const m = /owner=(\d+):(\d+)/.exec(alias ?? '');
  return m !== null && startTime(Number(m[1])) === m[2];
}

/** PIDs holding a tap open, from `ip tuntap show` ("Attached to processes:qemu-system-x86(123)"). */
function tapHolders(tap: string): number[] {
  try {
    const line = ip(['tuntap', 'show'])
      .split('\n')
      .find((l) => l.startsWith(`${tap}:`));
    return [...(line ?? '').matchAll(/\((\d+)\)/g)].map((m) => Number(m[1]));
  } catch {
    return [];
  }
}

function killPid(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Removes `cbvm…` links (and the QEMU holding a tap) whose owning process no longer runs. */
function removeLeftovers() {
  const links = JSON.parse(ip(['-j', '-d', 'link', 'show'])) as {
    ifname: string;
    ifalias?: string;
    linkinfo?: { info_kind?: string };
  }[];
  const stale = links.filter((l) => l.ifname.startsWith(linkPrefix) && !ownerAlive(l.ifalias));
  // Taps first, so a bridge is empty when it goes.
  stale.sort(
    (a, b) => Number(a.linkinfo?.info_kind === 'bridge') - Number(b.linkinfo?.info_kind === 'bridge'),
  );
  for (const l of stale) {
    for (const pid of tapHolders(l.ifname)) killPid(pid);
    tryIp(['link', 'del', l.ifname]);
  }
}

const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
const overlaps = (a: string, ap: number, b: string, bp: number) => {
  const m = maskOf(Math.min(ap, bp));
  return (toInt(a) & m) >>> 0 === (toInt(b) & m) >>> 0;
};

/** VMs booted on each bridge, so the bridge's cleanup ends them too. */
const vmsOf = new WeakMap<VmBridge, Set<() => void>>();

export function createVmBridge(opts: { address: string; prefix: number; tag?: string }): VmBridge {
  if (process.getuid?.() !== 0) throw new Error('VM tests need root (bridges and tap devices)');
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(opts.address) || opts.prefix < largestBridgePrefix || opts.prefix > 30)
    throw new Error(
      `${opts.address}/${opts.prefix} is not a /${largestBridgePrefix}..30 subnet of ${vmRange.network}/${vmRange.prefix}`,
    );
  if (!overlaps(opts.address, opts.prefix, vmRange.network, vmRange.prefix))
    throw new Error(`${opts.address}/${opts.prefix} is outside ${vmRange.network}/${vmRange.prefix}`);
  const tag = opts.tag ?? randomBytes(3).toString('hex');
  if (!/^[a-z0-9]{1,9}$/.test(tag)) throw new Error(`bridge tag ${tag} must be 1-9 of [a-z0-9]`);
  removeLeftovers();
  const inUse = (
    JSON.parse(ip(['-j', '-4', 'addr', 'show'])) as { addr_info: { local: string; prefixlen: number }[] }[]
  )
    .flatMap((l) => l.addr_info)
    .find((a) => overlaps(a.local, a.prefixlen, opts.address, opts.prefix));
  if (inUse)
    throw new Error(
      `${opts.address}/${opts.prefix} overlaps ${inUse.local}/${inUse.prefixlen}, already in use`,
    );

  const name = `${linkPrefix}br${tag}`;
  // No STP, no forward delay: a tap forwards the moment it joins, before the firmware's first DHCP.
  ip(['link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  const vms = new Set<() => void>();
  const bridge: VmBridge = {
    name,
    address: opts.address,
    prefix: opts.prefix,
    cleanup() {
      for (const kill of [...vms]) kill();
      tryIp(['link', 'del', name]);
    },
  };
  vmsOf.set(bridge, vms);
  try {
    ip(['link', 'set', name, 'alias', ownerAlias()]);
    ip(['addr', 'add', `${opts.address}/${opts.prefix}`, 'dev', name]);
    ip(['link', 'set', name, 'up']);
  } catch (e) {
    bridge.cleanup();
    throw e;
  }
  return bridge;
}

/** Terminal control sequences OVMF and iPXE print (colours, cursor moves, modes, charset selects). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC is what these sequences start with.
const escapes = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]|\r/g;
/** An escape sequence cut off at the end of a chunk: kept for the next one. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: as above.
const partialEscape = /\x1b(\[[0-?]*[ -/]*|[()])?$/;

/**
 * Turns console bytes into the text a person would have read: escape sequences and CRs dropped,
 * backspaces applied (iPXE erases its "Press Ctrl-B" prompt with them). Fed chunk by chunk.
 */
function consoleText(limit: number) {
  let text = '';
  let pending = '';
  return {
    text: () => text,
    feed(chunk: string) {
      let s = pending + chunk;
      const cut = partialEscape.exec(s);
      pending = cut ? cut[0] : '';
      if (cut) s = s.slice(0, cut.index);
      const [first, ...rest] = s.replace(escapes, '').split('\b');
      text += first ?? '';
      for (const part of rest) {
        if (text.length > 0 && !text.endsWith('\n')) text = text.slice(0, -1);
        text += part;
      }
      if (text.length > limit) text = text.slice(-limit);
    },
  };
}

export function bootVm(opts: {
  bridge: VmBridge;
  firmware: 'bios' | 'uefi';
  mac: string;
  memoryMb?: number;
  /** A raw disk image, attached as virtio. */
  disk?: string;
  /** QEMU `-boot order=` (e.g. `nc`: network, then disk); default network only. */
  bootOrder?: string;
  /** Exit when the guest reboots or powers off (default true). */
  noReboot?: boolean;
  /**
   * The NIC's option ROM (QEMU's iPXE, default true). Without it the firmware boots with its own
   * network stack: OVMF's UEFI PXE (TFTP) and HTTP boot, as most real servers' UEFI does.
   */
  nicRom?: boolean;
  /** Direct Linux boot: QEMU loads this kernel itself (`-kernel`), ahead of the firmware's boot order. */
  kernel?: string;
  /** With `kernel`: the initramfs (`-initrd`). */
  initrd?: string;
  /** With `kernel`: the kernel command line (`-append`). */
  append?: string;
}): Vm {
  const vms = vmsOf.get(opts.bridge);
  if (!vms) throw new Error(`bridge ${opts.bridge.name} was not made by createVmBridge`);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(opts.mac)) throw new Error(`bad MAC ${opts.mac}`);
  if ((opts.initrd !== undefined || opts.append !== undefined) && opts.kernel === undefined)
    throw new Error('initrd and append need kernel');
  removeLeftovers();
  const noReboot = opts.noReboot ?? true;
  const tap = `${linkPrefix}${randomBytes(4).toString('hex')}`;
  ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  let child: ChildProcess;
  try {
    ip(['link', 'set', tap, 'alias', ownerAlias()]);
    ip(['link', 'set', tap, 'master', opts.bridge.name]);
    ip(['link', 'set', tap, 'up']);
    // A direct-boot kernel comes first whatever the order; without one, network boot is the default.
    const order = opts.bootOrder ? `order=${opts.bootOrder}` : opts.kernel ? undefined : 'n';
    // With -no-reboot, reboot-timeout=0 makes SeaBIOS reset (so QEMU exits) when nothing booted,
    // instead of waiting at "No bootable device" forever. OVMF ignores it.
    const boot = [...(order ? [order] : []), ...(noReboot ? ['reboot-timeout=0'] : [])];
    const direct = opts.kernel
      ? [
          ...['-kernel', opts.kernel],
          ...(opts.initrd ? ['-initrd', opts.initrd] : []),
          ...(opts.append ? ['-append', opts.append] : []),
        ]
      : [];
    const qemu = [
      'qemu-system-x86_64',
      ...['-accel', 'tcg', '-m', String(opts.memoryMb ?? 512)],
      ...['-name', `crowbar-${opts.firmware}-${opts.mac}`],
      ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`],
      ...['-device', `virtio-net-pci,netdev=n0,mac=${opts.mac}${opts.nicRom === false ? ',romfile=' : ''}`],
      ...(opts.disk ? ['-drive', `file=${opts.disk},if=virtio,format=raw`] : []),
      ...direct,
      ...(boot.length > 0 ? ['-boot', boot.join(',')] : []),
      ...(opts.firmware === 'uefi' ? ['-bios', ovmf] : []),
      ...['-nographic', '-serial', 'mon:stdio'],
      ...(noReboot ? ['-no-reboot'] : []),
    ];
    // setpriv execs QEMU in place (same PID) with SIGKILL as its parent-death signal.
    const argv = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL', ...qemu] : qemu;
    child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    tryIp(['link', 'del', tap]);
    throw e;
  }

  const screen = consoleText(serialLimit);
  const serial = screen.text;
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (b: Buffer) => {
    screen.feed(b.toString('latin1'));
    for (const w of [...waiters]) w();
  });
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  let gone = false;
  const exited = new Promise<number | null>((resolve) => {
    const done = (code: number | null) => {
      if (gone) return;
      gone = true;
      tryIp(['link', 'del', tap]);
      vms.delete(killNow);
      resolve(code);
      for (const w of [...waiters]) w();
    };
    // 'close', not 'exit': it comes after the last console output has been read.
    child.once('close', (code) => done(code));
    // spawn failures (ENOENT) arrive as 'error' without 'exit'.
    child.once('error', (e) => {
      stderr += `\n${e.message}`;
      done(null);
    });
  });
  const killNow = () => {
    if (!gone && child.pid !== undefined) killPid(child.pid);
    tryIp(['link', 'del', tap]);
  };
  vms.add(killNow);

  const tail = () => {
    const s = serial().slice(-3000);
    return stderr.trim() ? `${s}\n[qemu stderr] ${stderr.trim()}` : s;
  };

  return {
    mac: opts.mac,
    firmware: opts.firmware,
    pid: child.pid ?? -1,
    serial,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const finish = (err: VmWaitError | null, m?: RegExpExecArray) => {
          waiters.delete(check);
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(m!);
        };
        const check = () => {
          pattern.lastIndex = 0;
          const m = pattern.exec(serial());
          if (m) finish(null, m);
          else if (gone) finish(new VmWaitError('exited', pattern, tail()));
        };
        const timer = setTimeout(() => finish(new VmWaitError('timeout', pattern, tail())), timeoutMs);
        waiters.add(check);
        check();
      });
    },
    exited,
    async kill() {
      killNow();
      await exited;
    },
  };
}

/** QEMU's exit code, or a rejection carrying the console tail if it is still running at the deadline. */
export async function exitWithin(vm: Vm, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`QEMU still running after ${ms} ms; console tail:\n${vm.serial().slice(-3000)}`)),
      ms,
    );
  });
  try {
    return await Promise.race([vm.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
