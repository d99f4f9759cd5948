import type { Bus } from '../bus/bus.js';
import type { Lineage } from '../bus/envelope.js';
import { ipamMessages } from '../catalogue/index.js';

/**
 * Where to reach a node over SSH: an explicit `ssh` hint (`{host, port}`, tests and the lab), else its
 * first admin-network address (IPv4 first) on port 22.
 */
export async function sshTargetOf(
  bus: Bus,
  node: { id: number; name: string; hint: Record<string, unknown> },
  lineage: Lineage = {},
): Promise<{ host: string; port: number }> {
  const hint = node.hint.ssh as { host?: unknown; port?: unknown } | undefined;
  const port = typeof hint?.port === 'number' ? hint.port : 22;
  if (typeof hint?.host === 'string') return { host: hint.host, port };
  const { allocations } = await bus.request(
    ipamMessages.nodeAddresses,
    { nodeId: node.id, category: 'admin' },
    lineage,
  );
  const first = allocations.find((a) => a.family === 'ipv4') ?? allocations[0];
  if (!first) throw new Error(`node ${node.name} has no admin address to reach it on`);
  return { host: first.address.split('/')[0]!, port };
}
