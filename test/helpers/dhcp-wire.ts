import { parsePacket } from '../../services/dhcp-db/domain/packet.js';
import type { Rng } from './prng.js';

/**
 * DHCPv4 packets for tests: requests as a client or relay sends them, replies read with the server's
 * own codec, and the fuzzer's mutations (from a seeded PRNG, so a failing run can be repeated).
 */

/* ---------------- packets ---------------- */

export const DISCOVER = 1;
export const OFFER = 2;
export const REQUEST = 3;
export const DECLINE = 4;
export const ACK = 5;
export const NAK = 6;
export const RELEASE = 7;
export const INFORM = 8;
const typeNames: Record<number, string> = { 2: 'offer', 5: 'ack', 6: 'nak' };

export interface RequestSpec {
  /** Option 53; null leaves it out. */
  type: number | null;
  mac: string;
  xid: number;
  giaddr: string;
  ciaddr?: string;
  /** Option 50. */
  requested?: string;
  /** Option 54. */
  server?: string;
  /** After 53, 50 and 54, before END. */
  options?: Array<[number, Uint8Array]>;
  op?: number;
  htype?: number;
  hlen?: number;
  hops?: number;
  flags?: number;
  magic?: number;
  /** false: no END option. */
  end?: boolean;
}

const quad = (a: string) => Buffer.from(a.split('.').map(Number));

/** A BOOTREQUEST as a client or relay sends it, padded to 300 bytes like most clients. */
export function buildRequest(s: RequestSpec): Buffer {
  const opts: Array<[number, Uint8Array]> = [];
  if (s.type !== null) opts.push([53, Buffer.from([s.type])]);
  if (s.requested) opts.push([50, quad(s.requested)]);
  if (s.server) opts.push([54, quad(s.server)]);
  opts.push(...(s.options ?? []));
  const body = Buffer.concat(opts.map(([c, v]) => Buffer.concat([Buffer.from([c, v.length]), v])));
  const out = Buffer.alloc(Math.max(300, 240 + body.length + 1));
  out[0] = s.op ?? 1;
  out[1] = s.htype ?? 1;
  out[2] = s.hlen ?? 6;
  out[3] = s.hops ?? 1;
  out.writeUInt32BE(s.xid >>> 0, 4);
  out.writeUInt16BE(s.flags ?? 0, 10);
  quad(s.ciaddr ?? '0.0.0.0').copy(out, 12);
  quad(s.giaddr).copy(out, 24);
  Buffer.from(s.mac.replaceAll(':', ''), 'hex').copy(out, 28);
  out.writeUInt32BE(s.magic ?? 0x63825363, 236);
  body.copy(out, 240);
  out[240 + body.length] = s.end === false ? 0 : 255;
  return out;
}

export interface Reply {
  type: 'offer' | 'ack' | 'nak' | 'other';
  xid: number;
  mac: string;
  yiaddr: string;
  /** Option 54 and option 56. */
  server: string | null;
  message: string | null;
}

/** A BOOTREPLY, read with the server's own parser (it takes BOOTREQUESTs, so op is flipped first). */
export function parseReply(buf: Buffer): Reply | null {
  if (buf.length < 240 || buf[0] !== 2) return null;
  const copy = Buffer.from(buf);
  copy[0] = 1;
  try {
    const p = parsePacket(copy);
    const sid = p.options.get(54);
    return {
      type: (typeNames[p.messageType] as Reply['type'] | undefined) ?? 'other',
      xid: p.xid,
      mac: p.mac,
      yiaddr: p.yiaddr,
      server: sid?.length === 4 ? [...sid].join('.') : null,
      message: p.options.get(56)?.toString('latin1') ?? null,
    };
  } catch {
    return null;
  }
}

export const macOf = (base: string, i: number) =>
  `${base}:${[(i >>> 16) & 255, (i >>> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
export const randomMac = (r: Rng) =>
  `02${[...r.bytes(5)].map((b) => `:${b.toString(16).padStart(2, '0')}`).join('')}`;

/** A plausible request of any type with a random mix of options, then 1–3 mutations of its bytes. */
export function fuzzPacket(r: Rng, ctx: { giaddr: string; server: string; addresses: string[] }): Buffer {
  const options: Array<[number, Uint8Array]> = [];
  if (r.next() < 0.7) options.push([55, Buffer.from([1, 3, 6, 12, 15, 28, 42, 66, 67, 119, 175])]);
  if (r.next() < 0.4) options.push([61, Buffer.concat([Buffer.from([1]), r.bytes(6)])]);
  if (r.next() < 0.4) options.push([60, Buffer.from('PXEClient:Arch:00007:UNDI:003016')]);
  if (r.next() < 0.3) options.push([93, r.bytes(2)]);
  if (r.next() < 0.3) options.push([57, r.bytes(2)]);
  if (r.next() < 0.3) options.push([12, Buffer.from(`fuzz${r.int(1000)}`)]);
  if (r.next() < 0.2) options.push([77, r.bytes(r.int(40))]);
  if (r.next() < 0.2) options.push([82, Buffer.concat([Buffer.from([1, 4]), r.bytes(4)])]);
  if (r.next() < 0.1) options.push([52, Buffer.from([1 + r.int(3)])]);
  const type = r.pick([DISCOVER, DISCOVER, REQUEST, REQUEST, DECLINE, RELEASE, INFORM, OFFER, r.int(256)]);
  const address = r.pick(ctx.addresses);
  const b = buildRequest({
    type,
    mac: randomMac(r),
    xid: r.int(2 ** 32),
    giaddr: ctx.giaddr,
    ...(r.next() < 0.3 ? { ciaddr: address } : {}),
    ...(r.next() < 0.6 ? { requested: address } : {}),
    ...(r.next() < 0.5 ? { server: ctx.server } : {}),
    options,
  });
  let out: Buffer = b;
  for (let m = 1 + r.int(3); m > 0; m--) out = mutate(r, out);
  return out;
}

function mutate(r: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (r.int(8)) {
    case 0: // leave it whole: most requests reach the engine
      return out;
    case 1: // bit flips anywhere
      for (let n = 1 + r.int(16); n > 0; n--) {
        const at = r.int(out.length);
        out[at] = out[at]! ^ (1 << r.int(8));
      }
      return out;
    case 2: // bytes set at random, mostly in the header
      for (let n = 1 + r.int(8); n > 0; n--) out[r.int(Math.min(out.length, 260))] = r.int(256);
      return out;
    case 3:
      return out.subarray(0, r.int(out.length + 1));
    case 4: // appended garbage, sometimes past the 4096-byte limit
      return Buffer.concat([out, r.bytes(r.next() < 0.1 ? 4000 + r.int(2000) : r.int(600))]);
    case 5: {
      // random options after the cookie: codes, lengths (some running past the end), maybe END
      const parts: Buffer[] = [out.subarray(0, 240)];
      if (r.next() < 0.8) parts.push(Buffer.from([53, 1, 1 + r.int(8)]));
      for (let n = r.int(40); n > 0; n--) {
        const len = r.int(r.next() < 0.1 ? 256 : 24);
        const real = r.next() < 0.95 ? len : r.int(len + 1);
        parts.push(Buffer.from([1 + r.int(254), len]), r.bytes(real));
      }
      if (r.next() < 0.7) parts.push(Buffer.from([255]));
      return Buffer.concat(parts);
    }
    case 6: // overload: sname and file full of option bytes
      r.bytes(192).copy(out, 44);
      return Buffer.concat([out.subarray(0, 240), Buffer.from([52, 1, r.int(5)]), out.subarray(240)]);
    default: // header fields the parser checks
      out[r.int(4)] = r.int(4) === 0 ? r.int(256) : r.pick([0, 1, 2, 6, 16, 17]);
      return out;
  }
}
