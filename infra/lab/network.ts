import { childrenOf, killPid, processId, run, stillRuns, tapHolders, tryRun } from './shell.js';

/**
 * The lab's wiring in the root namespace: one bridge carrying the admin node's address, and per node a
 * network namespace joined to the bridge by a veth pair (the node side is `eth0` with the node's MAC),
 * per VM a tap device.
 * Every name carries the lab's name, so a lab killed outright is swept away by the next one
 * (`sweepLab`), and the bridge's alias names its owner process. Addresses only from 198.18.0.0/15.
 */
export const labNames = (lab: string) => ({
  bridge: `cblab-${lab}`,
  veth: (i: number) => `cbl${lab}-${i}`,
  /** A VM's tap: the veths' prefix too, so the same sweep removes it. */
  tap: (i: number) => `cbl${lab}-v${i}`,
  netns: (i: number) => `cblab-${lab}-${i}`,
  netnsPrefix: `cblab-${lab}-`,
  vethPrefix: `cbl${lab}-`,
});

const labNameRe = /^[a-z0-9]{1,6}$/;
export function checkLabName(name: string): void {
  if (!labNameRe.test(name)) throw new Error(`lab name ${name} must be 1-6 of [a-z0-9]`);
}

const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
export const inSubnet = (a: string, net: string, prefix: number) =>
  (toInt(a) & maskOf(prefix)) >>> 0 === (toInt(net) & maskOf(prefix)) >>> 0;

/** `198.18.124.0/22` → its network and prefix; only subnets of 198.18.0.0/15 from /16 to /28. */
export function parseLabCidr(cidr: string): { network: string; prefix: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  const prefix = Number(m?.[2]);
  if (!m || prefix < 16 || prefix > 28 || !inSubnet(m[1]!, '198.18.0.0', 15))
    throw new Error(`${cidr} is not a /16../28 subnet of 198.18.0.0/15 (the lab uses no other addresses)`);
  const network = m[1]!;
  if ((toInt(network) & ~maskOf(prefix)) >>> 0 !== 0) throw new Error(`${cidr} has host bits set`);
  return { network, prefix };
}

/** The address `offset` hosts into a subnet. */
export const hostAt = (network: string, offset: number) => {
  const v = (toInt(network) + offset) >>> 0;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
};

interface LinkInfo {
  ifname: string;
  ifalias?: string;
  addr_info?: { local: string; prefixlen: number; family: string }[];
}

/**
 * Removes what a lab of this name left behind when its owner is gone: every process in its namespaces,
 * the namespaces, its veths and bridge. Refuses (throws) while the owner still runs. Returns what it did.
 */
export async function sweepLab(lab: string): Promise<string[]> {
  const n = labNames(lab);
  const notes: string[] = [];
  const links = JSON.parse(await run(['ip', '-j', 'link', 'show'])) as LinkInfo[];
  const bridge = links.find((l) => l.ifname === n.bridge);
  const owner = /owner=(\d+:\d+)/.exec(bridge?.ifalias ?? '')?.[1];
  if (owner && stillRuns(owner) && owner !== processId(process.pid))
    throw new Error(`lab ${lab} is running (process ${owner.split(':')[0]}); stop it first`);
  const namespaces = (await run(['ip', 'netns', 'list']))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((ns) => ns.startsWith(n.netnsPrefix));
  for (const ns of namespaces) {
    const pids = (await run(['ip', 'netns', 'pids', ns]).catch(() => ''))
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    for (const pid of pids) {
      for (const c of childrenOf(pid)) killPid(c);
      killPid(pid);
    }
    await tryRun(['ip', 'netns', 'del', ns]);
  }
  if (namespaces.length) notes.push(`removed ${namespaces.length} namespace(s) of lab ${lab}`);
  const stale = links.filter((l) => l.ifname.startsWith(n.vethPrefix));
  // A VM's tap is held by its QEMU (which should have died with the lab): ended by PID first.
  let vms = 0;
  for (const l of stale)
    for (const pid of tapHolders(l.ifname)) {
      killPid(pid);
      vms++;
    }
  if (vms) notes.push(`killed ${vms} VM(s) of lab ${lab}`);
  for (const l of stale) await tryRun(['ip', 'link', 'del', l.ifname]);
  if (bridge) {
    await tryRun(['ip', 'link', 'del', n.bridge]);
    notes.push(`removed bridge ${n.bridge}`);
  }
  return notes;
}

/**
 * Sweeps every lab whose owner is gone, whatever its name: a lab (or a test's lab, named at random)
 * killed outright otherwise keeps its bridge's address, and the next lab on that subnet is refused.
 */
export async function sweepDeadLabs(): Promise<string[]> {
  const links = JSON.parse(await run(['ip', '-j', 'link', 'show'])) as LinkInfo[];
  const notes: string[] = [];
  for (const l of links) {
    const lab = /^cblab-([a-z0-9]{1,6})$/.exec(l.ifname)?.[1];
    const owner = /owner=(\d+:\d+)/.exec(l.ifalias ?? '')?.[1];
    if (lab && owner && !stillRuns(owner)) notes.push(...(await sweepLab(lab)));
  }
  return notes;
}

export interface LabBridge {
  name: string;
  address: string;
  prefix: number;
}

/** The lab bridge with the admin node's address on it; the address must be free on this machine. */
export async function createBridge(lab: string, address: string, prefix: number): Promise<LabBridge> {
  const name = labNames(lab).bridge;
  const network = hostAt(address, 0);
  const links = JSON.parse(await run(['ip', '-j', '-4', 'addr', 'show'])) as LinkInfo[];
  const clash = links
    .flatMap((l) => (l.addr_info ?? []).map((a) => ({ ...a, ifname: l.ifname })))
    .find((a) => inSubnet(a.local, network, Math.min(prefix, a.prefixlen)));
  if (clash)
    throw new Error(`${address}/${prefix} overlaps ${clash.local}/${clash.prefixlen} on ${clash.ifname}`);
  await run(['ip', 'link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  try {
    await run(['ip', 'link', 'set', name, 'alias', `crowbar-lab ${lab} owner=${processId(process.pid)}`]);
    await run(['ip', 'addr', 'add', `${address}/${prefix}`, 'dev', name]);
    await run(['ip', 'link', 'set', name, 'up']);
  } catch (e) {
    await tryRun(['ip', 'link', 'del', name]);
    throw e;
  }
  return { name, address, prefix };
}

/**
 * Makes the namespaces and veths of nodes in one `ip -batch` (hundreds of nodes in a second): the
 * node's side is `eth0` with its MAC, already in its namespace; the root side joins the bridge.
 */
export async function addPorts(lab: string, ports: { index: number; mac: string }[]): Promise<void> {
  const n = labNames(lab);
  const lines: string[] = [];
  for (const p of ports) {
    lines.push(`netns add ${n.netns(p.index)}`);
    lines.push(
      `link add ${n.veth(p.index)} type veth peer name eth0 address ${p.mac} netns ${n.netns(p.index)}`,
    );
    lines.push(`link set ${n.veth(p.index)} master ${n.bridge} up`);
  }
  await run(['ip', '-batch', '-'], { input: `${lines.join('\n')}\n`, timeoutMs: 120_000 });
}

/** Removes a node's namespace (after its processes are gone) and veth. */
export async function removePort(lab: string, index: number): Promise<void> {
  const n = labNames(lab);
  await tryRun(['ip', 'netns', 'del', n.netns(index)]);
  await tryRun(['ip', 'link', 'del', n.veth(index)]);
}
