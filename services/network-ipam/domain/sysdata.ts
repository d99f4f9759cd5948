import type { AllocationSummary, NetworkDetail } from '../../../shared/catalogue/index.js';
import { conduitMembers, type Nic, type ResolvedConduit, resolveConduit } from './conduit.js';

/**
 * What a run of `network-<name>` hands the node (reference §5.6 sysdata): every address with the link
 * settings that apply to it (range overrides win), the router of its family, and the conduit resolved
 * into interface names when the node's NICs are known.
 */
export interface SysdataInput {
  network: NetworkDetail;
  /** The node's allocations on this network. */
  allocations: AllocationSummary[];
  /** Addresses of other nodes on the network, to ping after configuring. */
  targets: string[];
  nics: Nic[] | null;
  busOrder: string[];
}

export interface AddressConfig {
  network: string;
  range: string;
  conduit: string[];
  resolved_conduit: ResolvedConduit | null;
  vlan: number;
  category: string;
  group: string;
  pbr: string | null;
  team_mode: number;
  use_vlan: boolean;
  use_team: boolean;
  use_bridge: boolean;
  router: { pref: number; address: string } | null;
}

export function networkWall(i: SysdataInput): Record<string, unknown> {
  const n = i.network;
  const addresses: Record<string, AddressConfig> = {};
  for (const a of i.allocations) {
    const r = n.ranges.find((x) => x.name === a.range);
    const conduit = r?.conduit ?? n.conduit;
    const link = {
      vlan: r?.vlan ?? n.vlan,
      useVlan: r?.useVlan ?? n.useVlan,
      teamMode: r?.teamMode ?? n.teamMode,
      useTeam: r?.useTeam ?? n.useTeam,
      useBridge: r?.useBridge ?? n.useBridge,
    };
    const router = n.routers.find((x) => x.family === a.family);
    addresses[a.address] = {
      network: n.name,
      range: a.range,
      conduit: conduitMembers(conduit),
      resolved_conduit: i.nics && n.configure ? resolveConduit(conduit, i.nics, link, i.busOrder) : null,
      vlan: link.vlan,
      category: n.category,
      group: n.group,
      pbr: n.pbr,
      team_mode: link.teamMode,
      use_vlan: link.useVlan,
      use_team: link.useTeam,
      use_bridge: link.useBridge,
      router: router ? { pref: router.pref, address: router.address } : null,
    };
  }
  const first = Object.values(addresses)[0];
  return {
    crowbar_wall: {
      network: {
        addresses,
        [n.name]: {
          addresses: Object.keys(addresses),
          targets: i.targets,
          conduit: n.conduit,
          resolved_conduit: first?.resolved_conduit ?? null,
          vlan: n.vlan,
          team_mode: n.teamMode,
          use_vlan: n.useVlan,
          use_team: n.useTeam,
          use_bridge: n.useBridge,
          configure: n.configure,
          pbr: n.pbr,
          routers: n.routers.map((r) => ({ family: r.family, address: r.address, pref: r.pref })),
        },
      },
    },
  };
}
