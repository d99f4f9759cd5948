/**
 * IP address arithmetic for both families on bigint, so IPv4 and IPv6 share one code path.
 * Parsing returns null on bad input; callers turn that into a ValidationError naming their field.
 */
export type Family = 'ipv4' | 'ipv6';

export interface Ip {
  family: Family;
  value: bigint;
}

/** An address with the prefix length of its subnet, e.g. 198.18.0.81/24. */
export interface Cidr extends Ip {
  prefix: number;
}

export const bitsOf = (f: Family) => (f === 'ipv4' ? 32 : 128);

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length > 45) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    const items = h.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.includes('.')) {
        // An embedded IPv4 tail such as ::ffff:198.18.0.1.
        if (i !== items.length - 1) return null;
        const v4 = parseV4(it);
        if (v4 === null) return null;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return null;
      out.push(Number.parseInt(it, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function parseIp(s: string): Ip | null {
  const t = s.trim();
  if (t.includes(':')) {
    const v = parseV6(t);
    return v === null ? null : { family: 'ipv6', value: v };
  }
  const v = parseV4(t);
  return v === null ? null : { family: 'ipv4', value: v };
}

/** Parses `addr/len`; with `bareAllowed` a bare address counts as a host route (/32, /128). */
export function parseCidr(s: string, opts: { bareAllowed?: boolean } = {}): Cidr | null {
  const [addr, len, extra] = s.trim().split('/');
  if (extra !== undefined || addr === undefined) return null;
  const ip = parseIp(addr);
  if (!ip) return null;
  if (len === undefined) return opts.bareAllowed ? { ...ip, prefix: bitsOf(ip.family) } : null;
  if (!/^\d{1,3}$/.test(len)) return null;
  const prefix = Number(len);
  if (prefix > bitsOf(ip.family)) return null;
  return { ...ip, prefix };
}

function formatV6(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (leftmost on ties) of two or more zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function formatIp(ip: Ip): string {
  if (ip.family === 'ipv6') return formatV6(ip.value);
  const v = ip.value;
  return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
}

export const formatCidr = (c: Cidr) => `${formatIp(c)}/${c.prefix}`;

export function maskOf(family: Family, prefix: number): bigint {
  const bits = bitsOf(family);
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

export const networkOf = (c: Cidr): bigint => c.value & maskOf(c.family, c.prefix);
export const broadcastOf = (c: Cidr): bigint =>
  networkOf(c) | (~maskOf(c.family, c.prefix) & allOnes(c.family));
export const allOnes = (f: Family) => (1n << BigInt(bitsOf(f))) - 1n;
export const hostPartOf = (c: Cidr): bigint => c.value & (~maskOf(c.family, c.prefix) & allOnes(c.family));

/** The subnet itself in CIDR form, e.g. 198.18.0.0/24. */
export const subnetOf = (c: Cidr): string => formatCidr({ ...c, value: networkOf(c) });

export const sameSubnet = (a: Cidr, b: Cidr) =>
  a.family === b.family && a.prefix === b.prefix && networkOf(a) === networkOf(b);

/** True when `ip` lies in the subnet of `c`. */
export const inSubnet = (c: Cidr, ip: Ip) =>
  c.family === ip.family && (ip.value & maskOf(c.family, c.prefix)) === networkOf(c);
