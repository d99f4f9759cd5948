import { asc, eq, inArray, sql } from 'drizzle-orm';
import type { NetworkDetail, RangeDetail, RouterDetail } from '../../../shared/catalogue/index.js';
import type { Db } from '../../../shared/db/database.js';
import { NotFoundError } from '../../../shared/errors.js';
import { type Cidr, type Family, formatCidr, parseIp, subnetOf } from '../domain/address.js';
import { networks, ranges, routers } from './schema.js';

/** Queries about networks, ranges and routers. Works on the pool or inside a transaction. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type Q = Db | Tx;

export type NetworkRow = typeof networks.$inferSelect;
export type RangeRow = typeof ranges.$inferSelect;
export type RouterRow = typeof routers.$inferSelect;

export interface NetworkFull {
  net: NetworkRow;
  ranges: RangeRow[];
  routers: RouterRow[];
}

/** A stored host address plus a prefix length as a Cidr. */
export function cidrOf(address: string, prefix: number): Cidr {
  const ip = parseIp(address);
  if (!ip) throw new Error(`stored address ${address} does not parse`);
  return { ...ip, prefix };
}

export const rangeFirst = (r: RangeRow) => cidrOf(r.first, r.prefix);
export const rangeLast = (r: RangeRow) => cidrOf(r.last, r.prefix);

export function rangeDetailOf(r: RangeRow, networkName: string): RangeDetail {
  return {
    id: r.id,
    networkId: r.networkId,
    network: networkName,
    name: r.name,
    family: r.family as Family,
    first: formatCidr(rangeFirst(r)),
    last: formatCidr(rangeLast(r)),
    overlap: r.overlap,
    conduit: r.conduit,
    vlan: r.vlan,
    useVlan: r.useVlan,
    useBridge: r.useBridge,
    teamMode: r.teamMode,
    useTeam: r.useTeam,
    allowAnonLeases: r.allowAnonLeases,
    allowBoundLeases: r.allowBoundLeases,
    anonLeaseTime: r.anonLeaseTime,
    boundLeaseTime: r.boundLeaseTime,
  };
}

export function routerDetailOf(r: RouterRow, networkName: string): RouterDetail {
  return {
    id: r.id,
    networkId: r.networkId,
    network: networkName,
    family: r.family as Family,
    address: formatCidr(cidrOf(r.address, r.prefix)),
    pref: r.pref,
  };
}

/** Subnets of a network: one per distinct range subnet, IPv4 first. */
export function subnetsOf(f: NetworkFull): string[] {
  const out: string[] = [];
  const sorted = [...f.ranges].sort((a, b) => a.family.localeCompare(b.family) || a.id - b.id);
  for (const r of sorted) {
    const s = subnetOf(rangeFirst(r));
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

export function summaryOf(f: NetworkFull) {
  return {
    id: f.net.id,
    name: f.net.name,
    category: f.net.category as NetworkDetail['category'],
    group: f.net.group,
    deploymentId: f.net.deploymentId,
    v6prefix: f.net.v6prefix,
    subnets: subnetsOf(f),
  };
}

export function detailOf(f: NetworkFull): NetworkDetail {
  const n = f.net;
  return {
    ...summaryOf(f),
    description: n.description,
    conduit: n.conduit,
    vlan: n.vlan,
    useVlan: n.useVlan,
    teamMode: n.teamMode,
    useTeam: n.useTeam,
    useBridge: n.useBridge,
    configure: n.configure,
    pbr: n.pbr,
    order: n.order,
    roleDefined: n.roleDefined,
    ranges: f.ranges.map((r) => rangeDetailOf(r, n.name)),
    routers: f.routers.map((r) => routerDetailOf(r, n.name)),
  };
}

const byRef = (ref: number | string) =>
  typeof ref === 'number' || /^\d+$/.test(ref) ? eq(networks.id, Number(ref)) : eq(networks.name, ref);

async function withChildren(q: Q, rows: NetworkRow[]): Promise<NetworkFull[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const rs = await q.select().from(ranges).where(inArray(ranges.networkId, ids)).orderBy(asc(ranges.id));
  const ts = await q.select().from(routers).where(inArray(routers.networkId, ids)).orderBy(asc(routers.id));
  return rows.map((net) => ({
    net,
    ranges: rs.filter((r) => r.networkId === net.id),
    routers: ts.filter((r) => r.networkId === net.id),
  }));
}

export async function findNetwork(q: Q, ref: number | string, lock = false): Promise<NetworkFull | null> {
  const base = q.select().from(networks).where(byRef(ref));
  const rows = lock ? await base.for('update') : await base;
  const [full] = await withChildren(q, rows);
  return full ?? null;
}

export async function getNetwork(q: Q, ref: number | string, lock = false): Promise<NetworkFull> {
  const f = await findNetwork(q, ref, lock);
  if (!f) throw new NotFoundError(`network ${ref} not found`, { field: 'network' });
  return f;
}

export async function listNetworks(
  q: Q,
  filter: { category?: string | undefined; deploymentId?: number | undefined } = {},
): Promise<NetworkFull[]> {
  const conds = [];
  if (filter.category) conds.push(eq(networks.category, filter.category));
  if (filter.deploymentId) conds.push(eq(networks.deploymentId, filter.deploymentId));
  const rows = await q
    .select()
    .from(networks)
    .where(conds.length ? sql.join(conds, sql` and `) : undefined)
    .orderBy(asc(networks.order), asc(networks.id));
  return withChildren(q, rows);
}

/** Every conduit in use, except those of `exceptNetwork` (and its ranges), for the identical-or-disjoint rule. */
export async function otherConduits(
  q: Q,
  exceptNetwork: number | null,
  exceptRange: number | null = null,
): Promise<{ conduit: string; owner: string }[]> {
  const nets = await q
    .select({ id: networks.id, name: networks.name, conduit: networks.conduit })
    .from(networks);
  const rs = await q
    .select({ id: ranges.id, name: ranges.name, networkId: ranges.networkId, conduit: ranges.conduit })
    .from(ranges);
  const out: { conduit: string; owner: string }[] = [];
  for (const n of nets)
    if (n.id !== exceptNetwork) out.push({ conduit: n.conduit, owner: `network ${n.name}` });
  for (const r of rs) {
    if (r.conduit === null || r.id === exceptRange || r.networkId === exceptNetwork) continue;
    const owner = nets.find((n) => n.id === r.networkId)?.name ?? r.networkId;
    out.push({ conduit: r.conduit, owner: `range ${r.name} of network ${owner}` });
  }
  return out;
}

/** All ranges with their bounds, for the overlap rule. */
export async function allRangeBounds(q: Q) {
  const rs = await q
    .select({ range: ranges, network: networks.name })
    .from(ranges)
    .innerJoin(networks, eq(networks.id, ranges.networkId));
  return rs.map(({ range, network }) => ({
    id: range.id,
    family: range.family as Family,
    first: rangeFirst(range).value,
    last: rangeLast(range).value,
    overlap: range.overlap,
    label: `range ${range.name} of network ${network}`,
  }));
}
