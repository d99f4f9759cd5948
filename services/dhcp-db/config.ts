import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { type BootMap, bootMap } from '../../shared/catalogue/index.js';
import { intFromEnv } from '../../shared/config.js';

const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
const interfaceName = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** dhcp-db settings, from the environment. */
export const dhcpConfig = z.object({
  /**
   * Interfaces to serve on, comma-separated. Default: every interface that carries an address in a
   * managed admin network's subnet (re-checked as networks and interfaces change).
   */
  CROWBAR_DHCP_INTERFACES: list
    .refine((l) => l.every((n) => interfaceName.test(n)), 'must be a comma-separated list of interface names')
    .optional(),
  /** 67 for real clients; another port only for experiments. */
  CROWBAR_DHCP_PORT: intFromEnv(1, 65_535).default(67),
  /** How long an offered address is kept for the client it was offered to. */
  CROWBAR_DHCP_OFFER_HOLD_S: intFromEnv(1, 3600).default(60),
  /** How long a declined address stays out of the pool (RFC 2131 §3.1.5: another host uses it). */
  CROWBAR_DHCP_DECLINE_HOLD_S: intFromEnv(1, 7 * 86_400).default(3600),
  /** Bootenv of MACs that belong to no node. */
  CROWBAR_DHCP_DISCOVERY_BOOTENV: z.string().min(1).max(100).default('sledgehammer'),
  CROWBAR_DHCP_MTU: intFromEnv(576, 65_535).optional(),
  CROWBAR_DHCP_NTP_SERVERS: list
    .refine((l) => l.every((a) => isIPv4(a)), 'must be a comma-separated list of IPv4 addresses')
    .default([]),
  /** Used until the provisioner publishes its boot map; the boot map's HTTP port. */
  CROWBAR_PROVISIONER_HTTP_PORT: intFromEnv(1, 65_535).default(8091),
  /** A whole boot map as JSON, replacing the built-in default until the provisioner publishes one. */
  CROWBAR_DHCP_BOOT_MAP: z
    .string()
    .transform((s, ctx) => {
      try {
        const r = bootMap.safeParse(JSON.parse(s));
        if (r.success) return r.data;
        ctx.addIssue({
          code: 'custom',
          message: `not a boot map: ${r.error.issues[0]?.message ?? 'invalid'}`,
        });
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON' });
      }
      return z.NEVER;
    })
    .optional(),
  /** How often ended leases are marked expired. */
  CROWBAR_DHCP_EXPIRY_MS: intFromEnv(100, 3_600_000).default(5000),
  CROWBAR_DHCP_RESYNC_MS: intFromEnv(1000, 86_400_000).default(600_000),
});
export type DhcpConfig = z.infer<typeof dhcpConfig>;

/** The boot map served until the provisioner publishes one: Debian's iPXE binaries and per-MAC scripts. */
export function defaultBootMap(c: DhcpConfig): BootMap {
  return (
    c.CROWBAR_DHCP_BOOT_MAP ?? {
      tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'snponly.efi', arm64: null },
      http: { uefi64: '/ipxe/snponly.efi', arm64: null },
      script: '/boot/{mac}.ipxe',
      localBootenvs: ['local'],
      httpPort: c.CROWBAR_PROVISIONER_HTTP_PORT,
      tftpServer: null,
      version: 0,
    }
  );
}
