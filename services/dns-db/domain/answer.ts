import { type Answer, encode } from 'dns-packet';
import { findZone, type Snapshot, T, type ZoneView } from './snapshot.js';
import type { Query } from './wire.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const CLASS_IN = 1;

export interface Resolution {
  rcode: number;
  aa: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

const refused: Resolution = {
  rcode: RCODE.REFUSED,
  aa: false,
  answers: [],
  authorities: [],
  additionals: [],
};
const negative = (z: ZoneView, rcode: number): Resolution => ({
  rcode,
  aa: true,
  answers: [],
  authorities: [z.negativeSoa],
  additionals: [],
});

/**
 * What an authoritative-only server says (RFC 1034 §4.3.2 without recursion, RFC 2308 negative
 * answers, RFC 8020 empty non-terminals, RFC 8482 minimal ANY). Zone transfers are decided by the caller.
 */
export function resolve(s: Snapshot, q: { qname: string } & Pick<Query, 'qtype' | 'qclass'>): Resolution {
  if (q.qclass !== CLASS_IN) return refused;
  const zone = findZone(s, q.qname);
  if (!zone) return refused;
  const types = zone.owners.get(q.qname);
  if (!types) return negative(zone, zone.empty.has(q.qname) ? RCODE.NOERROR : RCODE.NXDOMAIN);
  let set: Answer[] | undefined;
  if (q.qtype === T.ANY) {
    // One RRset is enough to show the name exists without turning us into an amplifier.
    for (const t of [T.SOA, T.A, T.AAAA, T.PTR, T.NS]) {
      set = types.get(t);
      if (set) break;
    }
  } else set = types.get(q.qtype);
  if (!set) return negative(zone, RCODE.NOERROR);
  return {
    rcode: RCODE.NOERROR,
    aa: true,
    answers: set,
    authorities: [],
    additionals: q.qtype === T.NS && q.qname === zone.name ? zone.glue : [],
  };
}

/** Question bytes with ASCII letters folded, so one cached answer serves every case variant. */
export function foldedQuestion(query: Buffer, qEnd: number): Buffer {
  const q = Buffer.from(query.subarray(12, qEnd));
  for (let i = 0; i < q.length - 4; i++) if (q[i]! >= 0x41 && q[i]! <= 0x5a) q[i]! |= 0x20;
  return q;
}

/**
 * A complete response with id 0 and RD/CD clear, to be personalised per query by `personalise`.
 * Sections are encoded by dns-packet; the question is the query's own bytes.
 */
export function encodeResponse(question: Buffer, opcode: number, r: Resolution): Buffer {
  const body = encode({
    type: 'response',
    id: 0,
    flags: 0,
    questions: [],
    answers: r.answers,
    authorities: r.authorities,
    additionals: r.additionals,
  });
  const out = Buffer.allocUnsafe(body.length + question.length);
  out.writeUInt16BE(0, 0);
  out.writeUInt16BE(QR | (opcode << 11) | (r.aa ? AA : 0) | r.rcode, 2);
  out.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
  body.copy(out, 6, 6, 12);
  question.copy(out, 12);
  body.copy(out, 12 + question.length, 12);
  return out;
}

/** A header-only (plus question, when readable) reply: FORMERR, NOTIMP, REFUSED, or a truncation. */
export function headerReply(
  id: number,
  queryFlags: number,
  rcode: number,
  question: Buffer | null,
  tc = false,
) {
  const out = Buffer.alloc(12 + (question?.length ?? 0));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(QR | (queryFlags & 0x7900) | (tc ? TC : 0) | (queryFlags & 0x10) | rcode, 2);
  if (question) {
    out.writeUInt16BE(1, 4);
    question.copy(out, 12);
  }
  return out;
}

export const OPT_LEN = 11;
/** Our OPT record: advertised UDP size, extended rcode high bits, DO copied (RFC 3225). */
export function writeOpt(out: Buffer, at: number, udpSize: number, extRcode: number, dnssecOk: boolean) {
  out[at] = 0;
  out.writeUInt16BE(41, at + 1);
  out.writeUInt16BE(udpSize, at + 3);
  out[at + 5] = extRcode;
  out[at + 6] = 0;
  out.writeUInt16BE(dnssecOk ? 0x8000 : 0, at + 7);
  out.writeUInt16BE(0, at + 9);
}

/**
 * Turns a cached response into the answer to this query: its id, RD and CD, the question exactly as
 * asked (case preserved), an OPT when the client sent one, and TC=1 with empty sections when the
 * result does not fit `limit`.
 */
export function personalise(
  cached: Buffer,
  query: Buffer,
  q: Query,
  limit: number,
  ourUdpSize: number,
): Buffer {
  const opt = q.edns ? OPT_LEN : 0;
  let out: Buffer;
  if (cached.length + opt > limit) {
    out = Buffer.allocUnsafe(q.qEnd + opt);
    cached.copy(out, 0, 0, 12);
    out.writeUInt32BE(0, 6);
    out.writeUInt16BE(0, 10);
    out[2]! |= TC >> 8;
  } else {
    out = Buffer.allocUnsafe(cached.length + opt);
    cached.copy(out);
  }
  out.writeUInt16BE(q.id, 0);
  out[2]! |= (q.flags >> 8) & 0x01;
  out[3]! |= q.flags & 0x10;
  query.copy(out, 12, 12, q.qEnd);
  if (q.edns) {
    writeOpt(out, out.length - OPT_LEN, ourUdpSize, 0, q.edns.dnssecOk);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  return out;
}

/** EDNS version we do not speak: BADVERS (extended rcode 16 = high bits 1, low bits 0). */
export function badVersion(query: Buffer, q: Query, ourUdpSize: number): Buffer {
  const out = Buffer.alloc(q.qEnd + OPT_LEN);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(QR | (q.flags & 0x0110), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  query.copy(out, 12, 12, q.qEnd);
  writeOpt(out, q.qEnd, ourUdpSize, 1, false);
  return out;
}

/** AXFR (RFC 5936): SOA, every record, SOA again, split into messages of at most ~`perMessage` records. */
export function transferMessages(zone: ZoneView, question: Buffer, perMessage = 200): Buffer[] {
  const all: Answer[] = [];
  for (const types of zone.owners.values()) for (const set of types.values()) all.push(...set);
  const body = all.filter((a) => a.type !== 'SOA');
  const records = [zone.soa, ...body, zone.soa];
  const out: Buffer[] = [];
  for (let i = 0; i < records.length; i += perMessage) {
    out.push(
      encodeResponse(question, 0, {
        rcode: RCODE.NOERROR,
        aa: true,
        answers: records.slice(i, i + perMessage),
        authorities: [],
        additionals: [],
      }),
    );
  }
  return out;
}
