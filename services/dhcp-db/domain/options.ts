/**
 * DHCPv4 option codes (RFC 2132 and successors), typed readers of a request's options and builders of
 * reply values. Builders return the value only; `encodeReply` adds code and length and splits values
 * over 255 bytes (RFC 3396).
 */

export const PAD = 0;
export const SUBNET_MASK = 1;
export const ROUTER = 3;
export const DNS = 6;
export const HOSTNAME = 12;
export const DOMAIN_NAME = 15;
export const MTU = 26;
export const BROADCAST = 28;
export const NTP = 42;
export const REQUESTED_IP = 50;
export const LEASE_TIME = 51;
export const OVERLOAD = 52;
export const MSG_TYPE = 53;
export const SERVER_ID = 54;
export const PRL = 55;
export const MESSAGE = 56;
export const MAX_SIZE = 57;
export const T1 = 58;
export const T2 = 59;
export const VENDOR_CLASS = 60;
export const CLIENT_ID = 61;
export const TFTP_SERVER = 66;
export const BOOTFILE = 67;
export const USER_CLASS = 77;
export const RELAY_AGENT = 82;
export const CLIENT_ARCH = 93;
export const CLIENT_NDI = 94;
export const UUID = 97;
export const DOMAIN_SEARCH = 119;
export const IPXE_ENCAP = 175;
export const END = 255;

/** Dotted quad to an unsigned 32-bit number, or -1 when it is not one (no leading zeros, no regex). */
export function parseIpv4(s: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

function ipv4OrThrow(addr: string): number {
  const v = parseIpv4(addr);
  if (v < 0) throw new RangeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
  return v;
}

export function ipOpt(addr: string): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(ipv4OrThrow(addr), 0);
  return b;
}

export function ipsOpt(addrs: readonly string[]): Buffer {
  const b = Buffer.allocUnsafe(4 * addrs.length);
  for (let i = 0; i < addrs.length; i++) b.writeUInt32BE(ipv4OrThrow(addrs[i]!), 4 * i);
  return b;
}

export function u32Opt(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function u16Opt(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}

export function u8Opt(n: number): Buffer {
  const b = Buffer.allocUnsafe(1);
  b.writeUInt8(n, 0);
  return b;
}

export function strOpt(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** RFC 3397 domain search list, uncompressed: each name as length-prefixed labels and a zero byte. */
export function domainSearchOpt(names: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const name of names) {
    for (const label of name.split('.')) {
      if (label === '') continue;
      const bytes = Buffer.from(label, 'utf8');
      if (bytes.length > 63)
        throw new RangeError(`DNS label longer than 63 bytes in ${JSON.stringify(name)}`);
      parts.push(Buffer.from([bytes.length]), bytes);
    }
    parts.push(Buffer.from([0]));
  }
  return Buffer.concat(parts);
}

export function quadAt(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

// ---- typed readers: null (or the documented default) when absent or malformed ----

/** What the readers need of a DhcpPacket (kept structural so this file does not import packet.ts). */
export interface WithOptions {
  options: ReadonlyMap<number, Buffer>;
}

export function hasOption(p: WithOptions, code: number): boolean {
  return p.options.has(code);
}

function ipAt(p: WithOptions, code: number): string | null {
  const v = p.options.get(code);
  return v !== undefined && v.length === 4 ? quadAt(v, 0) : null;
}

/** Text value with trailing NULs removed (several clients count the terminator in the length). */
function text(p: WithOptions, code: number): string | null {
  const v = p.options.get(code);
  if (v === undefined) return null;
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  return end === 0 ? null : v.toString('latin1', 0, end);
}

export function requestedAddress(p: WithOptions): string | null {
  return ipAt(p, REQUESTED_IP);
}

export function serverIdentifier(p: WithOptions): string | null {
  return ipAt(p, SERVER_ID);
}

export function leaseTimeRequested(p: WithOptions): number | null {
  const v = p.options.get(LEASE_TIME);
  return v !== undefined && v.length === 4 ? v.readUInt32BE(0) : null;
}

/** Option 55 codes in the client's order; empty when absent. */
export function parameterList(p: WithOptions): number[] {
  const v = p.options.get(PRL);
  if (v === undefined) return [];
  const out = new Array<number>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]!;
  return out;
}

/** Option 57 clamped to [576, 1500]: no client may ask for less, and replies are never fragmented. */
export function maxMessageSize(p: WithOptions): number {
  const v = p.options.get(MAX_SIZE);
  if (v === undefined || v.length !== 2) return 576;
  return Math.min(1500, Math.max(576, v.readUInt16BE(0)));
}

export function clientId(p: WithOptions): Buffer | null {
  const v = p.options.get(CLIENT_ID);
  return v !== undefined && v.length >= 2 ? v : null;
}

export function hostnameOption(p: WithOptions): string | null {
  return text(p, HOSTNAME);
}

export function vendorClass(p: WithOptions): string | null {
  return text(p, VENDOR_CLASS);
}

/**
 * Option 77: RFC 3004 length-prefixed instances when they cover the value exactly, else the whole value
 * as one string (iPXE and ISC dhclient send a plain string such as "iPXE").
 */
export function userClass(p: WithOptions): string[] {
  const v = p.options.get(USER_CLASS);
  if (v === undefined || v.length === 0) return [];
  const out: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) break;
    out.push(v.toString('latin1', i + 1, i + 1 + len));
    i += 1 + len;
  }
  if (i === v.length) return out;
  const s = text(p, USER_CLASS);
  return s === null ? [] : [s];
}

/** Option 93: the first architecture type (RFC 4578); clients may list several. */
export function clientArch(p: WithOptions): number | null {
  const v = p.options.get(CLIENT_ARCH);
  return v !== undefined && v.length >= 2 && v.length % 2 === 0 ? v.readUInt16BE(0) : null;
}

export function relayAgentInfo(p: WithOptions): Buffer | null {
  return p.options.get(RELAY_AGENT) ?? null;
}
