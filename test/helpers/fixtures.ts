import type { NodeRegistry } from '../../services/provisioner/registry.js';
import type { NodeSummary } from '../../shared/catalogue/index.js';

/**
 * A node as inventory's events carry it: an ordinary node in `system`, alive and available, with no
 * MACs, roles, host key or address hints; `over` changes any field.
 */
export const nodeSummary = (id: number, name: string, over: Partial<NodeSummary> = {}): NodeSummary => ({
  id,
  name,
  admin: false,
  system: false,
  alive: true,
  available: true,
  bootenv: 'local',
  deploymentId: 1,
  deployment: 'system',
  macs: [],
  roles: [],
  sshHostKey: null,
  addressHints: {},
  ...over,
});

/** The provisioner's node registry over a fixed list of nodes (no inventory behind it). */
export const fixedRegistry = (nodes: () => NodeSummary[]): NodeRegistry => ({
  load: async () => undefined,
  put: async () => false,
  byMac: (mac: string) => nodes().find((n) => n.macs.includes(mac)),
  byName: (name: string) => nodes().find((n) => n.name === name),
  byId: (id: number) => nodes().find((n) => n.id === id),
  sawClient: () => undefined,
  macOfClient: () => null,
  size: () => nodes().length,
});
