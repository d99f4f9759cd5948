import { BlockList, isIP, isIPv4 } from 'node:net';
import { networkInterfaces, userInfo } from 'node:os';
import { z } from 'zod';
import { intFromEnv } from '../../shared/config.js';
import { isServableName, normaliseName, parseCidr } from './domain/names.js';
import type { ZoneSettings } from './domain/snapshot.js';

const ipList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .refine((l) => l.every((a) => isIP(a) !== 0), 'must be a comma-separated list of IP addresses');
const cidrList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .refine(
    (l) => l.every((c) => parseCidr(c) !== null),
    'must be a comma-separated list of addresses or CIDRs',
  );
const dnsName = z
  .string()
  .transform(normaliseName)
  .refine(isServableName, 'must be a DNS name such as crowbar.internal');

/** dns-db settings, from the environment. */
export const dnsConfig = z.object({
  /**
   * The cluster domain. Default `crowbar.internal`: `.internal` is reserved by ICANN (2024) for private
   * use, so it never collides with a real domain, and unlike `.local` it is not claimed by mDNS.
   */
  CROWBAR_DNS_DOMAIN: dnsName.default('crowbar.internal'),
  /** Addresses to listen on; both stacks by default. */
  CROWBAR_DNS_ADDRESS: ipList.default(['0.0.0.0', '::']),
  /** 53 when running as root, else 10053 (unprivileged); 0 picks a free port (tests). */
  CROWBAR_DNS_PORT: intFromEnv(0, 65_535).optional(),
  /** Servers a node's resolver should use (dns-client) and the NS glue; default: this host's addresses. */
  CROWBAR_DNS_SERVERS: ipList.optional(),
  /** Name server host name in SOA/NS; default ns.<domain>. */
  CROWBAR_DNS_NS_NAME: dnsName.optional(),
  CROWBAR_DNS_TTL: intFromEnv(0, 86_400).default(60),
  /** Clients allowed AXFR/IXFR; nobody by default (DESIGN §5). */
  CROWBAR_DNS_XFR_ALLOW: cidrList.default([]),
  /** UDP responses per second per client /24 (v4) or /56 (v6); 0 turns RRL off. */
  CROWBAR_DNS_RRL_RATE: intFromEnv(0, 10_000_000).default(200),
  /** Every n-th rate-limited response is sent truncated so real clients retry over TCP; 0 never. */
  CROWBAR_DNS_RRL_SLIP: intFromEnv(0, 10).default(2),
  CROWBAR_DNS_TCP_IDLE_MS: intFromEnv(100, 120_000).default(10_000),
  CROWBAR_DNS_MAX_UDP: intFromEnv(512, 4096).default(1232),
  CROWBAR_DNS_RESYNC_MS: intFromEnv(1000, 86_400_000).default(600_000),
});
export type DnsConfig = z.infer<typeof dnsConfig>;

export function listenPort(c: DnsConfig): number {
  return c.CROWBAR_DNS_PORT ?? (userInfo().uid === 0 ? 53 : 10_053);
}

/** The addresses clients should use: configured, else the specific listen addresses, else this host's. */
export function serverAddresses(c: DnsConfig): string[] {
  if (c.CROWBAR_DNS_SERVERS) return c.CROWBAR_DNS_SERVERS;
  const specific = c.CROWBAR_DNS_ADDRESS.filter((a) => a !== '0.0.0.0' && a !== '::');
  if (specific.length) return specific;
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (!i.internal && !i.address.startsWith('fe80')) out.push(i.address);
  return out;
}

export function zoneSettings(c: DnsConfig): ZoneSettings {
  const servers = serverAddresses(c);
  return {
    nsName: c.CROWBAR_DNS_NS_NAME ?? `ns.${c.CROWBAR_DNS_DOMAIN}`,
    nsAddresses: { v4: servers.filter((a) => isIPv4(a)), v6: servers.filter((a) => !isIPv4(a)) },
    hostmaster: `hostmaster.${c.CROWBAR_DNS_DOMAIN}`,
    ttl: c.CROWBAR_DNS_TTL,
    refresh: 3600,
    retry: 600,
    expire: 604_800,
    // Short negative caching: a node that just got its address must resolve soon after.
    minimum: Math.min(30, c.CROWBAR_DNS_TTL),
  };
}

export function transferPolicy(c: DnsConfig): (address: string) => boolean {
  if (c.CROWBAR_DNS_XFR_ALLOW.length === 0) return () => false;
  const list = new BlockList();
  for (const entry of c.CROWBAR_DNS_XFR_ALLOW) {
    const p = parseCidr(entry)!;
    list.addSubnet(p.address, p.prefix, p.family);
  }
  return (address) =>
    list.check(
      address.replace(/^::ffff:(?=\d+\.)/, ''),
      isIPv4(address.replace(/^::ffff:(?=\d+\.)/, '')) ? 'ipv4' : 'ipv6',
    );
}
