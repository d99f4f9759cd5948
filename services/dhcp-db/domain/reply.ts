/**
 * DHCPv4 replies: the header and echoed options of a reply to a request, and a size-aware encoder that
 * splits long options (RFC 3396), keeps the required ones and drops what does not fit, 82 last (RFC 3046).
 */
import { FILE_AT, FILE_LEN, MAGIC, OPTIONS_AT, SNAME_AT, SNAME_LEN } from './layout.js';
import {
  BOOTFILE,
  CLIENT_ID,
  DNS,
  END,
  LEASE_TIME,
  MSG_TYPE,
  PAD,
  parseIpv4,
  RELAY_AGENT,
  ROUTER,
  SERVER_ID,
  SUBNET_MASK,
  TFTP_SERVER,
} from './options.js';
import type { DhcpPacket } from './packet.js';

export interface DhcpReply {
  op: 2;
  htype: number;
  hlen: number;
  hops: 0;
  xid: number;
  secs: 0;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  chaddr: Buffer;
  sname?: string;
  file?: string;
  /** 53 and 54 are moved first and 82 last whatever the order here; the rest keep their order. */
  options: Array<[number, Uint8Array]>;
}

/** Header fields of a reply to `p`: same xid, flags, relay and hardware address. */
export function replyHeader(p: DhcpPacket): Omit<DhcpReply, 'yiaddr' | 'siaddr' | 'ciaddr' | 'options'> {
  return {
    op: 2,
    htype: p.htype,
    hlen: p.hlen,
    hops: 0,
    xid: p.xid,
    secs: 0,
    flags: p.flags,
    giaddr: p.giaddr,
    chaddr: p.chaddr,
  };
}

/** Options a reply must carry back unchanged: client identifier (RFC 6842) and relay info (RFC 3046). */
export function echoedOptions(p: DhcpPacket): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  const id = p.options.get(CLIENT_ID);
  if (id !== undefined) out.push([CLIENT_ID, id]);
  const relay = p.options.get(RELAY_AGENT);
  if (relay !== undefined) out.push([RELAY_AGENT, relay]);
  return out;
}

const REQUIRED = new Set([MSG_TYPE, SERVER_ID, LEASE_TIME, SUBNET_MASK, ROUTER, DNS, RELAY_AGENT, CLIENT_ID]);
const IP_UDP_HEADERS = 28;
const BOOTP_MIN_PAYLOAD = 300;

/** Bytes one option takes on the wire, split into 255-byte pieces (RFC 3396). */
function wireSize(len: number): number {
  return len === 0 ? 2 : len + 2 * Math.ceil(len / 255);
}

function writeAddr(out: Buffer, at: number, addr: string, field: string): void {
  const v = parseIpv4(addr);
  if (v < 0) throw new RangeError(`${field} is not an IPv4 address: ${JSON.stringify(addr)}`);
  out.writeUInt32BE(v, at);
}

/**
 * Encodes a reply whose IP datagram stays within `maxSize` (the client's option 57; at least 576 is
 * assumed). Required options (53, 54, 51, 1, 3, 6, 61, 82) always stay; any other option that does not fit
 * in what is left is dropped whole and listed in `dropped`, keeping the earlier (more wanted) ones.
 * A sname or file too long for its header field is sent as option 66 / 67 instead.
 * Throws RangeError only for caller mistakes (an address that is not a dotted quad).
 */
export function encodeReply(r: DhcpReply, maxSize: number): { packet: Buffer; dropped: number[] } {
  // latin1: one byte per character, so string length is byte length (as parsePacket reads them).
  const sname = r.sname ?? '';
  const file = r.file ?? '';
  const movedFile = file.length > FILE_LEN;
  const movedSname = sname.length > SNAME_LEN;
  const first: Array<[number, Uint8Array]> = [];
  const required: Array<[number, Uint8Array]> = [];
  const middle: Array<[number, Uint8Array]> = [];
  const last: Array<[number, Uint8Array]> = [];
  const dropped: number[] = [];
  if (movedSname) required.push([TFTP_SERVER, Buffer.from(sname, 'latin1')]);
  if (movedFile) required.push([BOOTFILE, Buffer.from(file, 'latin1')]);
  for (const opt of r.options) {
    const code = opt[0];
    if (!Number.isInteger(code) || code <= PAD || code >= END) dropped.push(code);
    else if (code === RELAY_AGENT) last.push(opt);
    else if (code === MSG_TYPE) first.unshift(opt);
    else if (code === SERVER_ID) first.push(opt);
    // The header's sname / file win over the caller's own 66 / 67 when they had to move.
    else if ((code === BOOTFILE && movedFile) || (code === TFTP_SERVER && movedSname)) continue;
    else middle.push(opt);
  }

  // Budget for options between the magic cookie and END.
  const limit = Number.isFinite(maxSize) ? Math.max(576, maxSize) : 576;
  let room = limit - IP_UDP_HEADERS - OPTIONS_AT - 1;
  const sized = (o: [number, Uint8Array]) => wireSize(o[1].length);
  for (const o of first) room -= sized(o);
  for (const o of required) room -= sized(o);
  for (const o of last) room -= sized(o);
  for (const o of middle) if (REQUIRED.has(o[0])) room -= sized(o);
  const kept = required;
  for (const o of middle) {
    if (REQUIRED.has(o[0])) kept.push(o);
    else if (sized(o) <= room) {
      room -= sized(o);
      kept.push(o);
    } else dropped.push(o[0]);
  }

  let optionBytes = 1;
  for (const o of first) optionBytes += sized(o);
  for (const o of kept) optionBytes += sized(o);
  for (const o of last) optionBytes += sized(o);
  // allocUnsafe takes from Node's pool, several times faster than alloc for a few hundred bytes.
  const out = Buffer.allocUnsafe(Math.max(BOOTP_MIN_PAYLOAD, OPTIONS_AT + optionBytes)).fill(0);
  out[0] = 2;
  out[1] = r.htype & 0xff;
  out[2] = r.hlen & 0xff;
  out.writeUInt32BE(r.xid >>> 0, 4);
  out.writeUInt16BE(r.flags & 0xffff, 10);
  writeAddr(out, 12, r.ciaddr, 'ciaddr');
  writeAddr(out, 16, r.yiaddr, 'yiaddr');
  writeAddr(out, 20, r.siaddr, 'siaddr');
  writeAddr(out, 24, r.giaddr, 'giaddr');
  r.chaddr.copy(out, 28, 0, Math.min(16, r.chaddr.length));
  if (sname.length <= SNAME_LEN) out.write(sname, SNAME_AT, 'latin1');
  if (file.length <= FILE_LEN) out.write(file, FILE_AT, 'latin1');
  out.writeUInt32BE(MAGIC, 236);

  let at = OPTIONS_AT;
  const put = (o: [number, Uint8Array]) => {
    const [code, value] = o;
    if (value.length === 0) {
      out[at++] = code;
      out[at++] = 0;
      return;
    }
    for (let from = 0; from < value.length; from += 255) {
      const len = Math.min(255, value.length - from);
      out[at++] = code;
      out[at++] = len;
      out.set(len === value.length ? value : value.subarray(from, from + len), at);
      at += len;
    }
  };
  for (const o of first) put(o);
  for (const o of kept) put(o);
  for (const o of last) put(o);
  out[at] = END;
  return { packet: out, dropped };
}

/**
 * Orders reply options for a client: 53 and 54 first, then the codes of its parameter request list in
 * its order, then the rest as given, 82 last; `encodeReply` drops what does not fit, later ones first.
 */
export function orderByRequest(
  options: ReadonlyArray<[number, Uint8Array]>,
  prl: readonly number[],
): Array<[number, Uint8Array]> {
  const head: Array<[number, Uint8Array]> = [];
  const tail: Array<[number, Uint8Array]> = [];
  const taken = new Array<boolean>(options.length).fill(false);
  const pick = (code: number, into: Array<[number, Uint8Array]>) => {
    for (let i = 0; i < options.length; i++) {
      const o = options[i]!;
      if (!taken[i] && o[0] === code) {
        taken[i] = true;
        into.push(o);
      }
    }
  };
  pick(MSG_TYPE, head);
  pick(SERVER_ID, head);
  for (const code of prl) if (code !== RELAY_AGENT) pick(code, head);
  pick(RELAY_AGENT, tail);
  for (let i = 0; i < options.length; i++) if (!taken[i]) head.push(options[i]!);
  return head.concat(tail);
}
