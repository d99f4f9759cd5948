/**
 * DHCPv4 wire format (RFC 2131/2132): strict parsing of client requests, typed option readers and a
 * size-aware reply encoder (`reply.ts`). Long options are split and rejoined per RFC 3396; option 82 is echoed last
 * (RFC 3046 §2.1) and option 61 is kept with the required options (RFC 6842).
 * Hot path: index reads on one Buffer, no regexes, allocations per option rather than per byte.
 */

import {
  FILE_AT,
  FILE_LEN,
  MAGIC,
  MAX_PACKET,
  MIN_PACKET,
  OPTIONS_AT,
  SNAME_AT,
  SNAME_LEN,
} from './layout.js';
import { END, MSG_TYPE, OVERLOAD, PAD, quadAt } from './options.js';

export { MAX_PACKET, MIN_PACKET } from './layout.js';
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
// The encoder is in reply.ts; re-exported so a packet's users need one import.
export { type DhcpReply, echoedOptions, encodeReply, orderByRequest, replyHeader } from './reply.js';

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
