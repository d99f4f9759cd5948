/**
 * The conduit language (reference §5.2): `1g0`, `+10g1`, `?1g0,?1g1`, or `bmc`. A conduit names
 * interfaces abstractly (by speed and ordinal) so one network definition fits many server models.
 */
export type ConduitSign = '' | '+' | '-' | '?';

export interface ConduitMember {
  sign: ConduitSign;
  /** Speed as written, e.g. `1g`. */
  speed: string;
  /** Speed in Mbit/s, for ordering. */
  mbps: number;
  index: number;
}

export type Conduit = { kind: 'bmc' } | { kind: 'nics'; members: ConduitMember[] };

export class ConduitError extends Error {}

const memberRe = /^([-+?]?)(\d{1,3})([mg])(\d+)$/;

export const speedMbps = (speed: string): number => {
  const m = /^(\d{1,3})([mg])$/.exec(speed);
  if (!m) return Number.NaN;
  return Number(m[1]) * (m[2] === 'g' ? 1000 : 1);
};

/** Parses and checks a conduit: every member shares sign and speed, no ordinal repeats. */
export function parseConduit(text: string): Conduit {
  const t = text.trim();
  if (t === 'bmc') return { kind: 'bmc' };
  if (t === '') throw new ConduitError('conduit is empty');
  const members: ConduitMember[] = [];
  for (const raw of t.split(',')) {
    const m = memberRe.exec(raw.trim());
    if (!m) throw new ConduitError(`conduit member "${raw.trim()}" is not [+-?]<speed><index>, e.g. 1g0`);
    const speed = `${Number(m[2])}${m[3]}`;
    members.push({ sign: m[1] as ConduitSign, speed, mbps: speedMbps(speed), index: Number(m[4]) });
  }
  const first = members[0]!;
  for (const m of members) {
    if (m.speed !== first.speed)
      throw new ConduitError(`conduit ${t} mixes speeds ${first.speed} and ${m.speed}`);
    if (m.sign !== first.sign) throw new ConduitError(`conduit ${t} mixes selector signs`);
  }
  if (new Set(members.map((m) => m.index)).size !== members.length)
    throw new ConduitError(`conduit ${t} names an interface twice`);
  return { kind: 'nics', members };
}

/** Canonical member strings, sorted: the set compared between networks. */
export function conduitMembers(text: string): string[] {
  return text
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean)
    .sort();
}

/** Member sets must be identical or disjoint (two networks sharing half a bond cannot both configure it). */
export function identicalOrDisjoint(a: string, b: string): boolean {
  const x = conduitMembers(a);
  const y = conduitMembers(b);
  if (x.join(',') === y.join(',')) return true;
  return !x.some((m) => y.includes(m));
}

/** A physical NIC as the node reports it. `bus` orders NICs (PCI address); `speeds` are the supported ones. */
export interface Nic {
  name: string;
  bus: string;
  speeds: string[];
}

/** Known speeds; the `+`/`-`/`?` walk visits these plus whatever the node reports (reference §11 #8). */
const standardSpeeds = ['10m', '100m', '1g', '10g', '20g', '25g', '40g', '50g', '100g'];

/** Candidate speeds for a member in the order its sign asks for. */
export function candidateSpeeds(m: Pick<ConduitMember, 'sign' | 'speed'>, nics: readonly Nic[]): string[] {
  const all = [...new Set([...standardSpeeds, ...nics.flatMap((n) => n.speeds), m.speed])]
    .filter((s) => !Number.isNaN(speedMbps(s)))
    .sort((a, b) => speedMbps(a) - speedMbps(b));
  const at = speedMbps(m.speed);
  const faster = all.filter((s) => speedMbps(s) > at);
  const slower = all.filter((s) => speedMbps(s) < at).reverse();
  switch (m.sign) {
    case '':
      return [m.speed];
    case '+':
      return [m.speed, ...faster];
    case '-':
      return [m.speed, ...slower];
    case '?':
      return [m.speed, ...faster, ...slower];
  }
}

const fastest = (n: Nic) =>
  n.speeds.reduce<string | null>(
    (best, s) => (best === null || speedMbps(s) > speedMbps(best) ? s : best),
    null,
  );

/**
 * Orders NICs by bus address; when `busOrder` (from `network_interface_maps`) is given, NICs whose bus
 * starts with an entry are placed first, bucketed in that entry order.
 */
export function orderNics(nics: readonly Nic[], busOrder: readonly string[] = []): Nic[] {
  const bucket = (n: Nic) => {
    const i = busOrder.findIndex((p) => n.bus.startsWith(p));
    return i < 0 ? busOrder.length : i;
  };
  return [...nics].sort(
    (a, b) => bucket(a) - bucket(b) || a.bus.localeCompare(b.bus) || a.name.localeCompare(b.name),
  );
}

export interface InterfaceOptions {
  vlan: number;
  useVlan: boolean;
  useTeam: boolean;
  teamMode: number;
  useBridge: boolean;
  /** Bond name to use when a bond is needed, e.g. `bond0`. */
  bondName?: string;
}

export interface ResolvedConduit {
  /** Physical NICs chosen, in member order. */
  nics: string[];
  speed: string;
  bond: { name: string; mode: number; slaves: string[] } | null;
  vlanInterface: string | null;
  bridge: string | null;
  /** The interface the address goes on. */
  interface: string;
}

/**
 * Resolves a conduit against a node's NICs (reference §5.2 node side): for each candidate speed in sign
 * order, every member's ordinal must exist among the NICs whose fastest speed equals it; the first speed
 * that satisfies all members wins. Then bond, VLAN and bridge interfaces are named.
 */
export function resolveConduit(
  text: string,
  nics: readonly Nic[],
  opts: InterfaceOptions,
  busOrder: readonly string[] = [],
): ResolvedConduit | null {
  const c = parseConduit(text);
  if (c.kind === 'bmc') return null;
  const ordered = orderNics(nics, busOrder);
  const first = c.members[0]!;
  let chosen: { speed: string; names: string[] } | null = null;
  for (const speed of candidateSpeeds(first, ordered)) {
    const atSpeed = ordered.filter((n) => fastest(n) === speed);
    const picked = c.members.map((m) => atSpeed[m.index]?.name);
    if (picked.every((p): p is string => p !== undefined)) {
      chosen = { speed, names: picked };
      break;
    }
  }
  if (!chosen) throw new ConduitError(`conduit ${text} matches none of the node's interfaces`);
  const bond =
    chosen.names.length > 1
      ? { name: opts.bondName ?? 'bond0', mode: opts.teamMode, slaves: chosen.names }
      : null;
  let iface = bond ? bond.name : chosen.names[0]!;
  const vlanInterface = opts.useVlan ? `${iface}.${opts.vlan}` : null;
  if (vlanInterface) iface = vlanInterface;
  let bridge: string | null = null;
  if (opts.useBridge) {
    bridge = opts.useVlan ? `br${opts.vlan}` : `br-${iface}`;
    iface = bridge;
  }
  return { nics: chosen.names, speed: chosen.speed, bond, vlanInterface, bridge, interface: iface };
}
