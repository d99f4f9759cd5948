/**
 * The query side of the wire format, parsed by hand: it is the hot path, and it must refuse every
 * malformed datagram with a reason instead of throwing somewhere deep in a generic decoder.
 */
export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  /**
   * Cache key: the question's name bytes case-folded, then type and class. Two spellings of one name
   * share it; the name text itself (`questionName`) is only built on a cache miss.
   */
  key: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question (the question is bytes 12..qEnd). */
  qEnd: number;
  edns: Edns | null;
}

/** Why a datagram cannot be answered normally. `id` is null when not even a header could be read. */
export class MalformedQuery extends Error {
  constructor(
    readonly reason: string,
    readonly id: number | null,
    readonly flags = 0,
    /** Set when the question itself could be read, so FORMERR/NOTIMP can echo it. */
    readonly qEnd = 0,
  ) {
    super(reason);
  }
}

export const OPCODE_QUERY = 0;
const MAX_NAME = 255;

/** Checks the question name at 12 and returns where it ends; refuses compression (no client compresses it). */
function walkQname(buf: Buffer, id: number, flags: number): number {
  let off = 12;
  for (let labels = 0; labels < 128; labels++) {
    if (off >= buf.length) throw new MalformedQuery('question name runs past the end', id, flags);
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if (len > 63) throw new MalformedQuery('compressed or extended label in the question', id, flags);
    if (off - 12 + len + 2 > MAX_NAME)
      throw new MalformedQuery('question name longer than 255 octets', id, flags);
    if (off + 1 + len > buf.length) throw new MalformedQuery('question label runs past the end', id, flags);
    off += 1 + len;
  }
  throw new MalformedQuery('too many labels', id, flags);
}

/**
 * The question name of a query that `parseQuery` accepted, as text: lower-case, dotted, no trailing dot;
 * bytes that are not plain printable (and `.` or `\` inside a label) become \DDD so labels stay apart.
 * Only needed when an answer is not cached yet.
 */
export function questionName(buf: Buffer): string {
  let off = 12;
  let name = '';
  for (let labels = 0; labels < 128; labels++) {
    const len = buf[off] ?? 0;
    if (len === 0) break;
    let label = '';
    for (let i = off + 1; i <= off + len; i++) {
      let c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      label +=
        c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c
          ? String.fromCharCode(c)
          : `\\${c.toString().padStart(3, '0')}`;
    }
    name = name === '' ? label : `${name}.${label}`;
    off += 1 + len;
  }
  return name;
}

/** Skips a (possibly compressed) name in the additional section; bounded so pointer loops end. */
function skipName(buf: Buffer, start: number, id: number, flags: number, qEnd: number): number {
  let off = start;
  for (let i = 0; i < 128; i++) {
    if (off >= buf.length) throw new MalformedQuery('record name runs past the end', id, flags, qEnd);
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) {
      if (off + 2 > buf.length) throw new MalformedQuery('truncated name pointer', id, flags, qEnd);
      return off + 2;
    }
    if (len > 63) throw new MalformedQuery('bad label type', id, flags, qEnd);
    off += 1 + len;
  }
  throw new MalformedQuery('record name too long', id, flags, qEnd);
}

/**
 * Parses a query datagram. Returns null for datagrams that must be dropped silently (too short to
 * answer, or themselves responses — answering those invites reflection loops).
 */
export function parseQuery(buf: Buffer): Query | null {
  if (buf.length < 12) return null;
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return null;
  const opcode = (flags >> 11) & 0xf;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) throw new MalformedQuery(`question count ${qd}, expected 1`, id, flags);
  const end = walkQname(buf, id, flags);
  if (end + 4 > buf.length) throw new MalformedQuery('question type/class missing', id, flags);
  const qtype = buf.readUInt16BE(end);
  const qclass = buf.readUInt16BE(end + 2);
  const qEnd = end + 4;
  const key = buf.toString('latin1', 12, end).toLowerCase() + buf.toString('latin1', end, qEnd);
  if (opcode !== OPCODE_QUERY) return { id, flags, opcode, key, qtype, qclass, qEnd, edns: null };
  // Only IXFR carries a record outside the additional section: the client's SOA in authority (RFC 1995).
  if (an !== 0 || (ns !== 0 && !(qtype === 251 && ns === 1)))
    throw new MalformedQuery('a query carries answer or authority records', id, flags, qEnd);
  let off = qEnd;
  let edns: Edns | null = null;
  for (let i = 0; i < ns + ar; i++) {
    const nameStart = off;
    off = skipName(buf, off, id, flags, qEnd);
    if (off + 10 > buf.length)
      throw new MalformedQuery('additional record header truncated', id, flags, qEnd);
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    if (off + 10 + rdlen > buf.length)
      throw new MalformedQuery('additional record data truncated', id, flags, qEnd);
    if (type === 41 && i >= ns) {
      if (edns) throw new MalformedQuery('more than one OPT record', id, flags, qEnd);
      if (off !== nameStart + 1)
        throw new MalformedQuery('OPT record owner is not the root', id, flags, qEnd);
      edns = {
        udpSize: Math.max(512, buf.readUInt16BE(off + 2)),
        version: buf[off + 5]!,
        dnssecOk: (buf[off + 6]! & 0x80) !== 0,
      };
      // Options are not interpreted (cookies, padding, ...) but must be well-formed TLVs.
      let o = off + 10;
      const stop = o + rdlen;
      while (o < stop) {
        if (o + 4 > stop) throw new MalformedQuery('EDNS option truncated', id, flags, qEnd);
        o += 4 + buf.readUInt16BE(o + 2);
        if (o > stop) throw new MalformedQuery('EDNS option runs past its record', id, flags, qEnd);
      }
    }
    off += 10 + rdlen;
  }
  if (off !== buf.length) throw new MalformedQuery('trailing bytes after the last record', id, flags, qEnd);
  return { id, flags, opcode, key, qtype, qclass, qEnd, edns };
}
