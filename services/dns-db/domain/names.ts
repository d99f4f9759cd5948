import { isIPv4, isIPv6 } from 'node:net';

/** Names are kept lower-case, absolute, without the trailing dot; the root is ''. */
const label = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** True when `name` is a host-like DNS name we are willing to serve (LDH plus `_`, ≤253 octets). */
export function isServableName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => label.test(l));
}

export const normaliseName = (name: string) => name.trim().toLowerCase().replace(/\.$/, '');

/** `a.b.c` is inside `b.c` and inside `a.b.c`. */
export const inZone = (name: string, zone: string) =>
  zone === '' || name === zone || name.endsWith(`.${zone}`);

/** Splits `198.18.0.81/24` into address and prefix length, checking both. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', len, ...rest] = cidr.split('/');
  if (rest.length > 0) return null;
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
  if (!family) return null;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len)))
    return null;
  return { address: family === 'ipv6' ? expandV6(address).join(':') : address, prefix, family };
}

/** Eight 4-digit groups. */
export function expandV6(address: string): string[] {
  let a = address.toLowerCase();
  // An embedded dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => g.padStart(4, '0'));
}

/** Canonical (RFC 5952) text of an IPv6 address, for answers that look like what operators type. */
export function compressV6(address: string): string {
  const groups = expandV6(address).map((g) => g.replace(/^0+(?=.)/, ''));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The PTR owner name of an address: `81.0.18.198.in-addr.arpa` or the 32-nibble ip6.arpa name. */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  const nibbles = expandV6(address).join('').split('').reverse();
  return `${nibbles.join('.')}.ip6.arpa`;
}

/**
 * The reverse zone holding an address, cut at the network's prefix: whole octets (8..24) for IPv4,
 * whole nibbles (16..124) for IPv6, so one network is one zone and /0 catch-alls never claim all of
 * in-addr.arpa. Longer IPv4 prefixes share their /24 zone (we are the authority for all of it anyway).
 */
export function reverseZone(address: string, prefix: number): string {
  const full = reverseName(address).split('.');
  if (isIPv4(address)) {
    const octets = Math.floor(Math.min(24, Math.max(8, prefix)) / 8);
    return full.slice(4 - octets).join('.');
  }
  const nibbles = Math.floor(Math.min(124, Math.max(16, prefix)) / 4);
  return full.slice(32 - nibbles).join('.');
}
