import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DebianProgram, ensureDebianPrograms } from '../packages.js';
import { labNames } from './network.js';
import type { LabNode, LabNodeSpec } from './node.js';
import { run, tapHolders } from './shell.js';

export { tapHolders };

/**
 * Real-firmware virtual machines: QEMU under software emulation (KVM guests hang on these machines),
 * SeaBIOS or OVMF, whose NIC option ROM is iPXE, each on a tap device joined to a Linux bridge in the
 * root namespace. The lab (`npm run lab -- --vms M`) and the VM tests (test/helpers/vm.ts) both boot
 * their VMs with `launchVm`; the caller names the tap (and its alias), so each can find and remove what
 * a killed run of its own left. QEMU gets SIGKILL when its parent dies, so a killed lab or test worker
 * does not leave VMs running.
 */

export const vmPrograms: DebianProgram[] = [
  { candidates: ['/usr/bin/qemu-system-x86_64'], pkg: 'qemu-system-x86' },
  { candidates: ['/usr/lib/ipxe/qemu/pxe-virtio.rom'], pkg: 'ipxe-qemu' },
  { candidates: ['/usr/share/qemu/OVMF.fd'], pkg: 'ovmf' },
  { candidates: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'], pkg: 'iproute2' },
];

export function ensureVmPrograms(log: (l: string) => void): void {
  ensureDebianPrograms(vmPrograms, 'VMs boot real firmware under QEMU', log);
}

export interface Vm {
  mac: string;
  firmware: 'bios' | 'uefi';
  pid: number;
  /** The tap device QEMU's NIC is on (removed when QEMU is gone). */
  tap: string;
  /** Everything the serial console printed so far (last 4 MB): escape sequences and CRs removed, backspaces applied. */
  serial(): string;
  /** Resolves with the first match in serial(); rejects with a VmWaitError (console tail) on timeout or exit. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** QEMU's exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGKILL by PID, then removes the tap; resolves when QEMU is gone. */
  kill(): Promise<void>;
}

export interface VmOptions {
  /** The bridge the tap joins (it must exist). */
  bridge: string;
  /** The tap's name (at most 15 characters) and alias: what a sweep of leftovers goes by. */
  tap: string;
  tapAlias: string;
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
  /** The machine's serial number (SMBIOS type 1), as DMI shows it to the guest. */
  serialNumber?: string;
  /** Appends the raw console output to this file too. */
  consoleFile?: string;
  /** Called once QEMU is gone (after the tap was removed). */
  onExit?: () => void;
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

const ovmf = '/usr/share/qemu/OVMF.fd';
const serialLimit = 4 * 1024 * 1024;

const ip = (args: string[]) =>
  execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });

export const tryIp = (args: string[]) => {
  try {
    ip(args);
  } catch {
    // already gone
  }
};

function killPid(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
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

/** Makes the tap on the bridge and boots QEMU on it; the tap goes when QEMU does. */
export function launchVm(opts: VmOptions): Vm {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(opts.mac)) throw new Error(`bad MAC ${opts.mac}`);
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.tap)) throw new Error(`bad tap name ${opts.tap}`);
  if ((opts.initrd !== undefined || opts.append !== undefined) && opts.kernel === undefined)
    throw new Error('initrd and append need kernel');
  if (opts.serialNumber !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(opts.serialNumber))
    throw new Error(`serial number ${opts.serialNumber} must be 1-64 of [A-Za-z0-9-]`);
  const noReboot = opts.noReboot ?? true;
  const tap = opts.tap;
  ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  let child: ChildProcess;
  try {
    ip(['link', 'set', tap, 'alias', opts.tapAlias]);
    ip(['link', 'set', tap, 'master', opts.bridge]);
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
      ...(opts.serialNumber ? ['-smbios', `type=1,serial=${opts.serialNumber}`] : []),
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

  const log: WriteStream | null = opts.consoleFile
    ? createWriteStream(opts.consoleFile, { flags: 'a' })
    : null;
  log?.on('error', () => undefined);
  const screen = consoleText(serialLimit);
  const serial = screen.text;
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (b: Buffer) => {
    log?.write(b);
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
      log?.end();
      opts.onExit?.();
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

  const tail = () => {
    const s = serial().slice(-3000);
    return stderr.trim() ? `${s}\n[qemu stderr] ${stderr.trim()}` : s;
  };

  return {
    mac: opts.mac,
    firmware: opts.firmware,
    pid: child.pid ?? -1,
    tap,
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
      if (!gone && child.pid !== undefined) killPid(child.pid);
      tryIp(['link', 'del', tap]);
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

/** A lab VM's memory: the discovery image unpacks into RAM. */
const labVmMemoryMb = 1024;
/** Its empty disk (sparse), for the installer to partition. */
const labVmDiskGib = 8;

/**
 * A lab VM (`npm run lab -- --vms M`): a SeaBIOS machine whose iPXE ROM boots from the lab's DHCP like
 * any server's, with an empty sparse disk (network first, then disk, as a data centre's machines are
 * set), the serial number the lab gives it in its DMI table, and its console in `console.log`. It
 * offers the lightweight node's controls where a real machine has them: power, reset (`reboot`), and
 * its cable (`link-down`); what happens inside it is reached over SSH as on hardware.
 */
export async function createLabVm(
  spec: LabNodeSpec,
  bridge: string,
  log: (line: string) => void,
): Promise<LabNode> {
  await mkdir(spec.dir, { recursive: true });
  const disk = join(spec.dir, 'disk.raw');
  const f = await open(disk, 'a');
  if ((await f.stat()).size === 0) await f.truncate(labVmDiskGib * 2 ** 30);
  await f.close();
  const tap = labNames(spec.lab).tap(spec.index);
  let vm: Vm | null = null;
  let linkDown = false;

  const powerOn = async () => {
    if (vm) return;
    const v = launchVm({
      bridge,
      tap,
      tapAlias: `crowbar-lab ${spec.lab} vm ${spec.label}`,
      firmware: 'bios',
      mac: spec.mac,
      memoryMb: labVmMemoryMb,
      disk,
      bootOrder: 'nc',
      noReboot: false,
      serialNumber: spec.serial,
      consoleFile: join(spec.dir, 'console.log'),
      onExit: () => {
        if (vm === v) vm = null;
      },
    });
    vm = v;
    if (linkDown) await run(['ip', 'link', 'set', tap, 'down']);
  };
  const powerOff = async () => {
    await vm?.kill();
  };
  const node: LabNode = {
    spec,
    power: () => (vm ? 'on' : 'off'),
    pid: () => vm?.pid ?? null,
    powerOn,
    powerOff,
    reboot() {
      // The reset button: QEMU ends and starts again on the same disk.
      void powerOff()
        .then(powerOn)
        .catch((e: unknown) => log(`${spec.label} did not boot again: ${String(e)}`));
    },
    exec: () => Promise.reject(new Error(`${spec.label} is a VM: reach it with ssh, as a real machine`)),
    async fault(fault) {
      if (fault.kind !== 'link-down')
        throw new Error(
          `${spec.label} is a VM: it takes link-down, reboot, power-off and power-on (${fault.kind} is for lightweight nodes)`,
        );
      linkDown = true;
      if (vm) await run(['ip', 'link', 'set', tap, 'down']);
    },
    async clear() {
      linkDown = false;
      if (vm) await run(['ip', 'link', 'set', tap, 'up']);
      else await powerOn();
    },
    faults: () => (linkDown ? ['link-down'] : []),
    console: () => readFile(join(spec.dir, 'console.log'), 'latin1').catch(() => ''),
    stop: powerOff,
  };
  return node;
}
