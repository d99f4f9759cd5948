import type { AllocationSummary, NetworkDetail, NodeSummary } from '../../../shared/catalogue/index.js';
import { normaliseMac } from '../../../shared/mac.js';
import { inSubnet, ipToInt, parseSubnet, type Subnet } from './ipv4.js';

/**
 * What the DHCP server serves, derived from the projection (pure, rebuilt after every projection
 * change): the managed networks with their IPv4 pools and routers, and one reservation per MAC.
 */
export interface PoolRange {
  id: number;
  name: string;
  first: number;
  last: number;
  allowAnon: boolean;
  allowBound: boolean;
  anonLeaseTime: number;
  boundLeaseTime: number;
}

export interface NetworkView {
  id: number;
  name: string;
  category: NetworkDetail['category'];
  subnet: Subnet;
  ranges: PoolRange[];
  /** IPv4 routers, best (lowest pref) first. */
  routers: number[];
}

export interface ReservationView {
  mac: string;
  nodeId: number;
  node: string;
  /** The first label of the node's name. */
  hostname: string;
  bootenv: string;
  /** The node's IPv4 addresses by network id (its allocations on managed networks). */
  addresses: Map<number, { address: number; range: string }>;
}

export interface ServedView {
  networks: NetworkView[];
  byMac: Map<string, ReservationView>;
  /** Every reserved address, so the anonymous pool never hands one out. */
  reserved: Set<number>;
}

export { normaliseMac };

export function buildView(rows: {
  nodes: NodeSummary[];
  allocations: AllocationSummary[];
  networks: NetworkDetail[];
}): ServedView {
  const networks: NetworkView[] = [];
  for (const n of rows.networks) {
    if (n.category === 'unmanaged') continue;
    const subnet = n.subnets.map(parseSubnet).find((s) => s !== null);
    if (!subnet) continue;
    const ranges: PoolRange[] = [];
    for (const r of n.ranges) {
      if (r.family !== 'ipv4') continue;
      const first = ipToInt(r.first);
      const last = ipToInt(r.last);
      if (first === null || last === null || last < first) continue;
      ranges.push({
        id: r.id,
        name: r.name,
        first,
        last,
        allowAnon: r.allowAnonLeases,
        allowBound: r.allowBoundLeases,
        anonLeaseTime: r.anonLeaseTime,
        boundLeaseTime: r.boundLeaseTime,
      });
    }
    const routers = n.routers
      .filter((r) => r.family === 'ipv4')
      .sort((a, b) => a.pref - b.pref || a.id - b.id)
      .map((r) => ipToInt(r.address))
      .filter((v): v is number => v !== null);
    networks.push({ id: n.id, name: n.name, category: n.category, subnet, ranges, routers });
  }
  // Most specific subnet first, so a lookup finds the narrowest network holding an address.
  networks.sort((a, b) => b.subnet.prefix - a.subnet.prefix || a.id - b.id);

  const byNode = new Map<number, AllocationSummary[]>();
  for (const a of rows.allocations) {
    if (a.family !== 'ipv4' || a.category === 'unmanaged') continue;
    const list = byNode.get(a.nodeId) ?? [];
    list.push(a);
    byNode.set(a.nodeId, list);
  }
  const byMac = new Map<string, ReservationView>();
  const reserved = new Set<number>();
  for (const node of rows.nodes) {
    // The admin node and deployments' phantom nodes are not DHCP clients (reference §6.1).
    if (node.admin || node.system) continue;
    const addresses = new Map<number, { address: number; range: string }>();
    for (const a of byNode.get(node.id) ?? []) {
      const v = ipToInt(a.address);
      if (v === null) continue;
      addresses.set(a.networkId, { address: v, range: a.range });
      reserved.add(v);
    }
    for (const raw of node.macs) {
      const mac = normaliseMac(raw);
      if (!mac) continue;
      byMac.set(mac, {
        mac,
        nodeId: node.id,
        node: node.name,
        hostname: node.name.split('.')[0] ?? node.name,
        bootenv: node.bootenv,
        addresses,
      });
    }
  }
  return { networks, byMac, reserved };
}

/** The managed network whose IPv4 subnet holds `address`, or undefined. */
export function networkHolding(view: ServedView, address: number): NetworkView | undefined {
  return view.networks.find((n) => inSubnet(n.subnet, address));
}

export function rangeHolding(net: NetworkView, address: number): PoolRange | undefined {
  return net.ranges.find((r) => address >= r.first && address <= r.last);
}
