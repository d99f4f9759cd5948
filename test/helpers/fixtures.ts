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
