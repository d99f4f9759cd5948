/**
 * DHCPv4 wire format (RFC 2131/2132): strict parsing of client requests, typed option readers and a
 * size-aware reply encoder. Long options are split and rejoined per RFC 3396; option 82 is echoed last
 * (RFC 3046 §2.1) and option 61 is kept with the required options (RFC 6842).
 * Hot path: index reads on one Buffer, no regexes, allocations per option rather than per byte.
 */
import {
  BOOTFILE,
  CLIENT_ID,
  DNS,
  END,
  LEASE_TIME,
  MSG_TYPE,
  OVERLOAD,
  PAD,
  parseIpv4,
  quadAt,
  RELAY_AGENT,
  ROUTER,
  SERVER_ID,
  SUBNET_MASK,
  TFTP_SERVER,
} from './options.js';

// The typed readers live with the option codes; re-exported so a packet's users need one import.
export {
  clientArch,
  clientId,
  hasOption,
  hostnameOption,
  leaseTimeRequested,
  maxMessageSize,
  parameterList,
  relayAgentInfo,
  requestedAddress,
  serverIdentifier,
  userClass,
  vendorClass,
} from './options.js';

export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export type DropReason =
  | 'truncated'
  | 'oversize'
  | 'bad_op'
  | 'bad_htype'
  | 'bad_hlen'
  | 'bad_magic'
  | 'option_overflow'
  | 'no_end'
  | 'no_message_type'
  | 'bad_message_type'
  | 'bad_option';

/** A request that is dropped; `reason` is stable and meant for a metric label. */
export class PacketError extends Error {
  readonly reason: DropReason;
  constructor(reason: DropReason, message: string = reason) {
    super(message);
    this.name = 'PacketError';
    this.reason = reason;
  }
}

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  broadcast: boolean;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** hlen bytes, copied out of the input */
  chaddr: Buffer;
  /** 'aa:bb:cc:dd:ee:ff' for Ethernet, else plain hex of chaddr */
  mac: string;
  /** NUL-trimmed, latin1; empty when the field carries options (option 52) */
  sname: string;
  file: string;
  /** Values after option overload and RFC 3396 concatenation; they are views into the input buffer. */
  options: Map<number, Buffer>;
  messageType: number;
}

export const MIN_PACKET = 240;
export const MAX_PACKET = 4096;
const MAGIC = 0x63825363;
const SNAME_AT = 44;
const SNAME_LEN = 64;
const FILE_AT = 108;
const FILE_LEN = 128;
const OPTIONS_AT = 240;

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function macOf(chaddr: Buffer, htype: number): string {
  let s = '';
  const sep = htype === 1 && chaddr.length === 6 ? ':' : '';
  for (let i = 0; i < chaddr.length; i++) s += (i > 0 ? sep : '') + HEX[chaddr[i]!];
  return s;
}

function cstring(b: Buffer, at: number, len: number): string {
  const nul = b.indexOf(0, at);
  return b.toString('latin1', at, nul === -1 || nul > at + len ? at + len : nul);
}

/** Collects option values per code; repeated codes are joined afterwards (RFC 3396). */
class OptionCollector {
  readonly options = new Map<number, Buffer>();
  private parts: Map<number, Buffer[]> | null = null;

  /** Walks [at, end); returns whether an END option was seen. */
  walk(b: Buffer, at: number, end: number, skipOverload: boolean): boolean {
    let i = at;
    while (i < end) {
      const code = b[i]!;
      if (code === PAD) {
        i++;
        continue;
      }
      if (code === END) return true;
      if (i + 1 >= end) throw new PacketError('option_overflow', `option ${code} has no length byte`);
      const len = b[i + 1]!;
      const from = i + 2;
      if (from + len > end) throw new PacketError('option_overflow', `option ${code} runs past its field`);
      if (!(skipOverload && code === OVERLOAD)) this.add(code, b.subarray(from, from + len));
      i = from + len;
    }
    return false;
  }

  private add(code: number, value: Buffer): void {
    const first = this.options.get(code);
    if (first === undefined) {
      this.options.set(code, value);
      return;
    }
    this.parts ??= new Map();
    const list = this.parts.get(code);
    if (list === undefined) this.parts.set(code, [first, value]);
    else list.push(value);
  }

  repeated(code: number): boolean {
    return this.parts?.has(code) ?? false;
  }

  finish(): Map<number, Buffer> {
    if (this.parts !== null)
      for (const [code, list] of this.parts) this.options.set(code, Buffer.concat(list));
    return this.options;
  }
}

/** Parses a client's or relay's BOOTREQUEST; throws only PacketError. */
export function parsePacket(input: Uint8Array): DhcpPacket {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (b.length < MIN_PACKET) throw new PacketError('truncated');
  if (b.length > MAX_PACKET) throw new PacketError('oversize');
  const op = b[0]!;
  if (op !== 1) throw new PacketError('bad_op', `op ${op} is not BOOTREQUEST`);
  const htype = b[1]!;
  const hlen = b[2]!;
  if (htype === 1) {
    if (hlen !== 6) throw new PacketError('bad_hlen', `hlen ${hlen} for Ethernet`);
  } else if (htype === 6) {
    if (hlen < 1 || hlen > 16) throw new PacketError('bad_hlen', `hlen ${hlen} for IEEE 802`);
  } else {
    throw new PacketError('bad_htype', `htype ${htype} is not supported`);
  }
  if (b.readUInt32BE(236) !== MAGIC) throw new PacketError('bad_magic');

  const collector = new OptionCollector();
  if (!collector.walk(b, OPTIONS_AT, b.length, false)) throw new PacketError('no_end');
  const overloadValue = collector.options.get(OVERLOAD);
  let overload = 0;
  if (overloadValue !== undefined) {
    overload = overloadValue.length === 1 && !collector.repeated(OVERLOAD) ? overloadValue[0]! : 0;
    if (overload < 1 || overload > 3) throw new PacketError('bad_option', 'option 52 must be 1, 2 or 3');
  }
  // RFC 3396 §5: the aggregate buffer is options, then file, then sname. An END is not required in
  // these fields: clients pad them to the end instead often enough.
  if (overload & 1) collector.walk(b, FILE_AT, FILE_AT + FILE_LEN, true);
  if (overload & 2) collector.walk(b, SNAME_AT, SNAME_AT + SNAME_LEN, true);
  const options = collector.finish();

  const mt = options.get(MSG_TYPE);
  if (mt === undefined) throw new PacketError('no_message_type');
  if (mt.length !== 1) throw new PacketError('bad_option', 'option 53 must be one byte');
  const messageType = mt[0]!;
  if (messageType < 1 || messageType > 8) {
    throw new PacketError('bad_message_type', `message type ${messageType}`);
  }

  const chaddr = Buffer.from(b.subarray(28, 28 + hlen));
  const flags = b.readUInt16BE(10);
  return {
    op,
    htype,
    hlen,
    hops: b[3]!,
    xid: b.readUInt32BE(4),
    secs: b.readUInt16BE(8),
    flags,
    broadcast: (flags & 0x8000) !== 0,
    ciaddr: quadAt(b, 12),
    yiaddr: quadAt(b, 16),
    siaddr: quadAt(b, 20),
    giaddr: quadAt(b, 24),
    chaddr,
    mac: macOf(chaddr, htype),
    sname: overload & 2 ? '' : cstring(b, SNAME_AT, SNAME_LEN),
    file: overload & 1 ? '' : cstring(b, FILE_AT, FILE_LEN),
    options,
    messageType,
  };
}

// ---- encoding ----

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
