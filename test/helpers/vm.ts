import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { launchVm, tapHolders, tryIp, type Vm, type VmOptions } from '../../infra/lab/vm.js';

export { ensureVmPrograms, exitWithin, type Vm, VmWaitError, vmPrograms } from '../../infra/lab/vm.js';

/**
 * Real-firmware virtual machines for tests (QEMU, SeaBIOS or OVMF with iPXE, booted by infra/lab/vm.ts
 * as the lab boots its VMs) on a Linux bridge in the root namespace of their own, so services started
 * by the test reach the VMs directly. The bridge holds only addresses from
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

export interface VmBridge {
  name: string;
  /** The root namespace's address on the bridge, without prefix length (services listen here). */
  address: string;
  prefix: number;
  /** Kills every VM booted on this bridge, removes their taps and the bridge; safe to call twice. */
  cleanup(): void;
}

const linkPrefix = 'cbvm';

const ip = (args: string[]) =>
  execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });

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

/** The test bridge's VMs: `launchVm`'s options, with a bridge made by `createVmBridge` and its own tap. */
export type BootVmOptions = Omit<
  VmOptions,
  'bridge' | 'tap' | 'tapAlias' | 'onExit' | 'consoleFile' | 'serialNumber'
> & {
  bridge: VmBridge;
};

export function bootVm(opts: BootVmOptions): Vm {
  const vms = vmsOf.get(opts.bridge);
  if (!vms) throw new Error(`bridge ${opts.bridge.name} was not made by createVmBridge`);
  removeLeftovers();
  const { bridge, ...rest } = opts;
  let kill: () => void = () => undefined;
  const vm = launchVm({
    ...rest,
    bridge: bridge.name,
    tap: `${linkPrefix}${randomBytes(4).toString('hex')}`,
    tapAlias: ownerAlias(),
    onExit: () => vms.delete(kill),
  });
  kill = () => void vm.kill();
  vms.add(kill);
  return vm;
}
