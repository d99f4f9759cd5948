import { hostAt } from './network.js';
import type { Api } from './progress.js';

/** Waits until the gateway's health says every service is up. */
export async function waitHealthy(base: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(3000) });
      const h = (await r.json()) as { up: number; total: number };
      if (h.up === h.total && h.total > 0) return;
    } catch {
      // not answering yet
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`the control plane was not healthy within ${ms / 1000} s`);
}

/**
 * Healthy is not yet ready for machines: the admin network's role (network-admin, which registration
 * binds) must exist and dhcp-db must serve the bridge with the provisioner's boot map.
 */
export async function waitReady(api: Api, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const role = await api.call('GET', '/roles/network-admin').catch(() => ({ status: 0, body: null }));
    const dhcp = await api.call('GET', '/dhcp/stats').catch(() => ({ status: 0, body: null }));
    const stats = dhcp.body as {
      interfaces?: { listening?: boolean }[];
      bootMap?: { source?: string };
    } | null;
    if (role.status === 200 && stats?.interfaces?.[0]?.listening && stats.bootMap?.source === 'provisioner')
      return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `the control plane did not get ready for machines within ${ms / 1000} s (network-admin, dhcp-db)`,
  );
}

/**
 * The bootstrap admin network leases anonymous addresses from 60 (`dhcp`, offsets 21–80): a bigger
 * fleet booting at once needs more, so the `host` range gives up its start to it (through the API).
 */
export async function fitDhcpRange(
  api: Api,
  network: string,
  prefix: number,
  machines: number,
  say: (line: string) => void,
): Promise<void> {
  const last = 21 + machines + 19;
  if (last <= 80) return;
  if (last + 2 >= 2 ** (32 - prefix) - 2)
    throw new Error(`${machines} nodes do not fit the admin network /${prefix}`);
  const at = (offset: number) => `${hostAt(network, offset)}/${prefix}`;
  const host = await api.call('PUT', '/network_ranges/host?network=admin', { first: at(last + 1) });
  const dhcp = await api.call('PUT', '/network_ranges/dhcp?network=admin', { last: at(last) });
  if (host.status !== 200 || dhcp.status !== 200)
    throw new Error(
      `could not widen the dhcp range: ${JSON.stringify([host.body, dhcp.body]).slice(0, 300)}`,
    );
  say(`admin network: anonymous DHCP range ${at(21)} – ${at(last)} for ${machines} nodes`);
}
