import { createHash } from 'node:crypto';
import { type Cidr, formatIp, parseIp } from './address.js';

/**
 * RFC 4193 unique local prefixes (DESIGN §4, reference §11 #9): `fd` + a 40-bit global ID generated
 * once per installation, then the network id as the 16-bit subnet ID, giving one /64 per network.
 */

/** The 40-bit global ID as ten hex digits; `random` supplies 5 bytes (injected so tests are stable). */
export function newGlobalId(random: (n: number) => Buffer): string {
  const b = random(5);
  if (b.length !== 5) throw new Error('global ID needs 5 random bytes');
  return b.toString('hex');
}

/** The installation's /48, e.g. `fd12:3456:789a::/48`, from its global ID. */
export function ulaPrefix48(globalId: string): string {
  const [a, b, c] = ulaHextets(globalId);
  return `${formatIp(parseIp(`${a}:${b}:${c}::`)!)}/48`;
}

function ulaHextets(globalId: string): [string, string, string] {
  if (!/^[0-9a-f]{10}$/.test(globalId)) throw new Error(`malformed global ID ${globalId}`);
  return [`fd${globalId.slice(0, 2)}`, globalId.slice(2, 6), globalId.slice(6, 10)];
}

/** A network's automatic /64 prefix as four hextets, e.g. `fd12:3456:789a:1`. */
export function autoPrefix(globalId: string, networkId: number): string {
  if (!Number.isInteger(networkId) || networkId < 0 || networkId > 0xffff)
    throw new Error(`network id ${networkId} does not fit a 16-bit subnet ID`);
  return normalizePrefix([...ulaHextets(globalId), networkId.toString(16)].join(':'))!;
}

/** Accepts four hextets (`[0-9a-f]{1,4}` ×4), returns them lower-case without leading zeros, or null. */
export function normalizePrefix(s: string): string | null {
  if (!/^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){3}$/.test(s)) return null;
  return s
    .split(':')
    .map((h) => Number.parseInt(h, 16).toString(16))
    .join(':');
}

/** First and last usable address of a prefix's /64, for the auto-created `host-v6` range. */
export function hostV6Bounds(prefix: string): { first: string; last: string } {
  return { first: `${prefix}::1/64`, last: `${prefix}:ffff:ffff:ffff:fffe/64` };
}

/** Interface ID: the last 64 bits of md5(FQDN) (hex characters 16–31 of the digest). */
export function interfaceId(fqdn: string): bigint {
  const hex = createHash('md5').update(fqdn, 'utf8').digest('hex');
  return BigInt(`0x${hex.slice(16, 32)}`);
}

/** The md5-derived address of a node inside the /64 of `subnet` (any address of that /64). */
export function md5Address(subnet: Cidr, fqdn: string): Cidr {
  const upper = (subnet.value >> 64n) << 64n;
  return { family: 'ipv6', value: upper | interfaceId(fqdn), prefix: subnet.prefix };
}
