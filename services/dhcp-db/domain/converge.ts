import type { NodeSummary } from '../../../shared/catalogue/index.js';
import { intToIp, ipToInt } from './ipv4.js';
import { normaliseMac, type ServedView } from './view.js';

/**
 * Where the served reservations differ from the owners' truth: for each node (or only `nodeId`), every
 * MAC must be reserved with the node's bootenv and its admin-network IPv4 address.
 */
export function lagging(
  view: ServedView,
  truth: { nodes: NodeSummary[]; addresses: Map<number, Map<number, string>> },
  nodeId: number | null,
): string[] {
  const out: string[] = [];
  for (const n of truth.nodes) {
    if (n.admin || n.system || (nodeId !== null && n.id !== nodeId)) continue;
    for (const raw of n.macs) {
      const mac = normaliseMac(raw);
      if (!mac) continue;
      const r = view.byMac.get(mac);
      if (!r) {
        out.push(`${n.name}: no reservation for ${mac} yet`);
        continue;
      }
      if (r.bootenv !== n.bootenv) out.push(`${n.name}: bootenv ${r.bootenv} served, ${n.bootenv} wanted`);
      for (const [networkId, address] of truth.addresses.get(n.id) ?? []) {
        const have = r.addresses.get(networkId);
        if (have?.address !== ipToInt(address))
          out.push(`${n.name}: address ${have ? intToIp(have.address) : 'none'} served, ${address} wanted`);
      }
    }
  }
  return out;
}
