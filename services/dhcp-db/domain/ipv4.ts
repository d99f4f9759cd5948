/** IPv4 addresses as unsigned 32-bit numbers: what pools, subnets and the lease table index by. */
import { parseIpv4 } from './options.js';

/** Parses a dotted quad (an optional `/len` is ignored); null when it is not one. */
export function ipToInt(s: string): number | null {
  const slash = s.indexOf('/');
  const v = parseIpv4(slash < 0 ? s : s.slice(0, slash));
  return v < 0 ? null : v;
}

export function intToIp(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export interface Subnet {
  base: number;
  prefix: number;
  /** Broadcast address. */
  last: number;
}

/** `198.18.0.0/24` → its network; null unless it is an IPv4 CIDR. */
export function parseSubnet(cidr: string): Subnet | null {
  const slash = cidr.indexOf('/');
  if (slash < 0) return null;
  const addr = ipToInt(cidr.slice(0, slash));
  const prefix = Number(cidr.slice(slash + 1));
  if (addr === null || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return null;
  const size = 2 ** (32 - prefix);
  const base = addr - (addr % size);
  return { base, prefix, last: base + size - 1 };
}

export const inSubnet = (s: Subnet, v: number) => v >= s.base && v <= s.last;
export const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
