/**
 * TFTP wire format: RFC 1350 packets, RFC 2347 option extension (OACK), RFC 2348 blksize, RFC 2349 tsize
 * and timeout, RFC 7440 windowsize; netascii conversion (RFC 764). Requests are parsed strictly, with the
 * one leniency real PXE ROMs need: NUL padding after the last field. Hot path (DATA, ACK) is index reads
 * and writes on one Buffer.
 */

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_NEGOTIATION: 8,
} as const;

export type DropReason =
  | 'truncated'
  | 'oversize'
  | 'bad_opcode'
  | 'unterminated'
  | 'bad_filename'
  | 'bad_mode'
  | 'bad_option';

/**
 * A packet that is not acted upon; `reason` is stable and meant for a metric label. `answer` is the TFTP
 * error code to reply with, or null when the datagram is dropped without a reply (junk gets none, so the
 * server never reflects more than it was sent).
 */
export class PacketError extends Error {
  readonly reason: DropReason;
  readonly answer: number | null;
  constructor(reason: DropReason, answer: number | null, message: string = reason) {
    super(message);
    this.name = 'PacketError';
    this.reason = reason;
    this.answer = answer;
  }
}

export type TransferMode = 'octet' | 'netascii';

export interface TftpRequest {
  op: 'rrq' | 'wrq';
  file: string;
  mode: TransferMode;
  /** Lower-cased names, raw values, in request order. */
  options: Map<string, string>;
}

export type TftpPacket =
  | TftpRequest
  | { op: 'data'; block: number; data: Buffer }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: Map<string, string> };

/** RFC 2347 keeps a request within 512 octets; some ROMs pad further, nobody needs more than this. */
export const MAX_REQUEST = 1024;
export const DATA_HEADER = 4;
export const DEFAULT_BLKSIZE = 512;
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
export const MAX_WINDOWSIZE = 65535;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** NUL-separated fields from `at`; the last one must be terminated. Trailing empty fields are kept. */
function fields(b: Buffer, at: number): string[] | null {
  const out: string[] = [];
  let from = at;
  while (from < b.length) {
    const nul = b.indexOf(0, from);
    if (nul === -1) return null;
    out.push(b.toString('latin1', from, nul));
    from = nul + 1;
  }
  return out;
}

function parseRequest(b: Buffer, op: 'rrq' | 'wrq'): TftpRequest {
  if (b.length > MAX_REQUEST) throw new PacketError('oversize', null);
  const nul = b.indexOf(0, 2);
  if (nul === -1) throw new PacketError('unterminated', null);
  let file: string;
  try {
    file = utf8.decode(b.subarray(2, nul));
  } catch {
    throw new PacketError('bad_filename', ErrorCode.FILE_NOT_FOUND, 'file name is not UTF-8');
  }
  if (file.length === 0) throw new PacketError('bad_filename', ErrorCode.FILE_NOT_FOUND, 'empty file name');
  const rest = fields(b, nul + 1);
  if (rest === null || rest.length === 0) throw new PacketError('unterminated', null);
  const modeName = rest[0]!.toLowerCase();
  if (modeName !== 'octet' && modeName !== 'netascii')
    throw new PacketError(
      'bad_mode',
      ErrorCode.ILLEGAL_OPERATION,
      `mode ${rest[0]!.slice(0, 16)} not supported`,
    );
  const options = new Map<string, string>();
  for (let i = 1; i < rest.length; i += 2) {
    const name = rest[i]!.toLowerCase();
    if (name === '') {
      // NUL padding: what follows must be padding too.
      if (rest.slice(i).some((f) => f !== ''))
        throw new PacketError('bad_option', ErrorCode.OPTION_NEGOTIATION);
      break;
    }
    const value = rest[i + 1];
    if (value === undefined)
      throw new PacketError('bad_option', ErrorCode.OPTION_NEGOTIATION, `option ${name} has no value`);
    if (options.has(name))
      throw new PacketError('bad_option', ErrorCode.OPTION_NEGOTIATION, `option ${name} given twice`);
    options.set(name, value);
  }
  return { op, file, mode: modeName, options };
}

/** Parses any TFTP packet; throws only PacketError. DATA payloads are views into the input. */
export function parsePacket(input: Uint8Array): TftpPacket {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (b.length < 4) throw new PacketError('truncated', null);
  const op = b.readUInt16BE(0);
  switch (op) {
    case Opcode.RRQ:
      return parseRequest(b, 'rrq');
    case Opcode.WRQ:
      return parseRequest(b, 'wrq');
    case Opcode.DATA:
      if (b.length > DATA_HEADER + MAX_BLKSIZE) throw new PacketError('oversize', null);
      return { op: 'data', block: b.readUInt16BE(2), data: b.subarray(DATA_HEADER) };
    case Opcode.ACK:
      // Some clients pad ACKs; the block number is all that counts.
      return { op: 'ack', block: b.readUInt16BE(2) };
    case Opcode.ERROR: {
      const nul = b.indexOf(0, 4);
      return {
        op: 'error',
        code: b.readUInt16BE(2),
        message: b.toString('latin1', 4, nul === -1 ? Math.min(b.length, 516) : nul),
      };
    }
    case Opcode.OACK: {
      const f = fields(b, 2);
      if (f === null || f.length % 2 !== 0) throw new PacketError('unterminated', null);
      const options = new Map<string, string>();
      for (let i = 0; i < f.length; i += 2) options.set(f[i]!.toLowerCase(), f[i + 1]!);
      return { op: 'oack', options };
    }
    default:
      throw new PacketError('bad_opcode', null, `opcode ${op}`);
  }
}

// ---- negotiation (RFC 2347) ----

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** The client's retransmission timeout, or null for the server's. */
  timeoutMs: number | null;
  /** What goes into the OACK, in request order; empty means no OACK (plain RFC 1350). */
  acked: [string, number][];
}

export interface NegotiationLimits {
  /** A window's bytes in flight; windowsize is lowered to fit (RFC 7440 lets the server answer less). */
  maxWindowBytes: number;
}

function integer(name: string, value: string, min: number, max: number): number {
  // Digits only: Number() would take '0x10', ' 8', '1e3'.
  if (value.length === 0 || value.length > 10 || !/^[0-9]+$/.test(value))
    throw new PacketError(
      'bad_option',
      ErrorCode.OPTION_NEGOTIATION,
      `${name} ${value.slice(0, 16)} is not a number`,
    );
  const n = Number(value);
  if (n < min || n > max)
    throw new PacketError(
      'bad_option',
      ErrorCode.OPTION_NEGOTIATION,
      `${name} ${n} is outside ${min}..${max}`,
    );
  return n;
}

/**
 * The options of a read request against a file of `size` bytes; unknown options are left out of the OACK
 * (RFC 2347), known ones with a bad value fail the request with ERROR 8. tsize is acknowledged in octet
 * mode only: a netascii transfer's size is not known before it is converted (as tftpd-hpa).
 */
export function negotiate(
  options: Map<string, string>,
  mode: TransferMode,
  size: number,
  limits: NegotiationLimits,
): Negotiated {
  let blksize = DEFAULT_BLKSIZE;
  let windowsize = 1;
  let timeoutMs: number | null = null;
  const acked: [string, number][] = [];
  for (const [name, value] of options) {
    switch (name) {
      case 'blksize':
        blksize = integer(name, value, MIN_BLKSIZE, MAX_BLKSIZE);
        acked.push([name, blksize]);
        break;
      case 'timeout': {
        const s = integer(name, value, 1, 255);
        timeoutMs = s * 1000;
        acked.push([name, s]);
        break;
      }
      case 'tsize':
        integer(name, value, 0, Number.MAX_SAFE_INTEGER);
        if (mode === 'octet') acked.push([name, size]);
        break;
      case 'windowsize':
        windowsize = integer(name, value, 1, MAX_WINDOWSIZE);
        acked.push([name, windowsize]);
        break;
    }
  }
  const fit = Math.max(1, Math.floor(limits.maxWindowBytes / blksize));
  if (windowsize > fit) {
    windowsize = fit;
    for (const a of acked) if (a[0] === 'windowsize') a[1] = fit;
  }
  return { blksize, windowsize, timeoutMs, acked };
}

// ---- encoding ----

function cstrings(op: number, parts: string[]): Buffer {
  let len = 2;
  for (const p of parts) len += Buffer.byteLength(p, 'utf8') + 1;
  const b = Buffer.alloc(len);
  b.writeUInt16BE(op, 0);
  let at = 2;
  for (const p of parts) {
    at += b.write(p, at, 'utf8');
    at++; // NUL, already zero
  }
  return b;
}

export function encodeRequest(
  op: 'rrq' | 'wrq',
  file: string,
  mode: string,
  options: Iterable<[string, string | number]> = [],
): Buffer {
  const parts = [file, mode];
  for (const [k, v] of options) parts.push(k, String(v));
  return cstrings(op === 'rrq' ? Opcode.RRQ : Opcode.WRQ, parts);
}

export function encodeOack(options: Iterable<[string, number]>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of options) parts.push(k, String(v));
  return cstrings(Opcode.OACK, parts);
}

/** Messages are ASCII and kept short, so an ERROR always fits a 512-octet datagram. */
export function encodeError(code: number, message: string): Buffer {
  const text = message.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  const b = Buffer.alloc(5 + text.length);
  b.writeUInt16BE(Opcode.ERROR, 0);
  b.writeUInt16BE(code & 0xffff, 2);
  b.write(text, 4, 'latin1');
  return b;
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(Opcode.ACK, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

/** Writes a DATA header into the first 4 bytes of `b` (the payload follows it in the same buffer). */
export function writeDataHeader(b: Buffer, block: number): void {
  b[0] = 0;
  b[1] = Opcode.DATA;
  b[2] = (block >>> 8) & 0xff;
  b[3] = block & 0xff;
}

export function encodeData(block: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(DATA_HEADER + payload.length);
  writeDataHeader(b, block);
  b.set(payload, DATA_HEADER);
  return b;
}

// ---- netascii (RFC 764: CR LF ends a line, a bare CR is sent as CR NUL) ----

const CR = 13;
const LF = 10;

/** Stateless per byte, so a file can be converted chunk by chunk. */
export function toNetascii(src: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === LF || c === CR) extra++;
  }
  if (extra === 0) return src;
  const out = Buffer.allocUnsafe(src.length + extra);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else if (c === CR) {
      out[o++] = CR;
      out[o++] = 0;
    } else out[o++] = c;
  }
  return out;
}

/** The receiving side's conversion, of a whole transfer (a CR may end one block and its pair start the next). */
export function fromNetascii(src: Buffer): Buffer {
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === CR && i + 1 < src.length && (src[i + 1] === LF || src[i + 1] === 0)) {
      out[o++] = src[i + 1] === LF ? LF : CR;
      i++;
    } else out[o++] = c;
  }
  return out.subarray(0, o);
}
