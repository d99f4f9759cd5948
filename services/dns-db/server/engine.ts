import {
  badVersion,
  encodeResponse,
  foldedQuestion,
  headerReply,
  personalise,
  RCODE,
  resolve,
  transferMessages,
} from '../domain/answer.js';
import { emptySnapshot, findZone, type Snapshot, T } from '../domain/snapshot.js';
import { MalformedQuery, parseQuery, questionName } from '../domain/wire.js';

export type Transport = 'udp' | 'tcp';

export interface EngineOptions {
  /** Largest UDP answer we send to an EDNS client (and advertise); 1232 avoids IP fragmentation. */
  maxUdp: number;
  /** May this client transfer zones? Off for everyone by default (DESIGN §5). */
  transferAllowed: (address: string) => boolean;
  /** Bound on cached answers; a flood of random names cannot grow memory past it. */
  maxCached?: number;
}

const NOTAUTH = 9;

/**
 * Query in, datagrams out: the transport-independent part of the server. Answers come from a cache of
 * encoded responses keyed by (type, class, folded name), dropped whenever a new snapshot is installed.
 */
export class DnsEngine {
  private snapshot: Snapshot = emptySnapshot;
  private cache = new Map<string, Buffer>();
  readonly stats = {
    queries: 0,
    formErr: 0,
    notImp: 0,
    refused: 0,
    nxDomain: 0,
    truncated: 0,
    transfers: 0,
    transfersRefused: 0,
    dropped: 0,
    internalErrors: 0,
  };

  constructor(private readonly opts: EngineOptions) {}

  get current(): Snapshot {
    return this.snapshot;
  }

  install(s: Snapshot) {
    this.snapshot = s;
    this.cache = new Map();
  }

  /** Never throws: anything unexpected is counted and answered SERVFAIL (or dropped). */
  answer(query: Buffer, transport: Transport, address: string): Buffer[] {
    this.stats.queries++;
    try {
      return this.answerOrThrow(query, transport, address);
    } catch (err) {
      if (err instanceof MalformedQuery) {
        this.stats.formErr++;
        if (err.id === null) return [];
        const question = err.qEnd > 0 ? query.subarray(12, err.qEnd) : null;
        return [headerReply(err.id, err.flags, RCODE.FORMERR, question)];
      }
      this.stats.internalErrors++;
      if (query.length < 12) return [];
      return [headerReply(query.readUInt16BE(0), query.readUInt16BE(2), RCODE.SERVFAIL, null)];
    }
  }

  private answerOrThrow(query: Buffer, transport: Transport, address: string): Buffer[] {
    const q = parseQuery(query);
    if (!q) {
      this.stats.dropped++;
      return [];
    }
    const question = query.subarray(12, q.qEnd);
    if (q.opcode !== 0) {
      this.stats.notImp++;
      return [headerReply(q.id, q.flags, RCODE.NOTIMP, question)];
    }
    if (q.edns && q.edns.version > 0) return [badVersion(query, q, this.opts.maxUdp)];
    if (q.qtype === T.AXFR || q.qtype === T.IXFR) return this.transfer(query, q, transport, address);
    let cached = this.cache.get(q.key);
    if (!cached) {
      const r = resolve(this.snapshot, { qname: questionName(query), qtype: q.qtype, qclass: q.qclass });
      cached = encodeResponse(foldedQuestion(query, q.qEnd), 0, r);
      if (this.cache.size >= (this.opts.maxCached ?? 100_000)) this.cache.clear();
      this.cache.set(q.key, cached);
    }
    const rcode = cached[3]! & 0x0f;
    if (rcode === RCODE.REFUSED) this.stats.refused++;
    else if (rcode === RCODE.NXDOMAIN) this.stats.nxDomain++;
    const limit = transport === 'tcp' ? 65_535 : q.edns ? Math.min(q.edns.udpSize, this.opts.maxUdp) : 512;
    const out = personalise(cached, query, q, limit, this.opts.maxUdp);
    if (out.length < cached.length) this.stats.truncated++;
    return [out];
  }

  private transfer(
    query: Buffer,
    q: NonNullable<ReturnType<typeof parseQuery>>,
    t: Transport,
    address: string,
  ) {
    const question = query.subarray(12, q.qEnd);
    if (!this.opts.transferAllowed(address)) {
      this.stats.transfersRefused++;
      return [headerReply(q.id, q.flags, RCODE.REFUSED, question)];
    }
    const qname = questionName(query);
    const zone = findZone(this.snapshot, qname);
    if (!zone || zone.name !== qname) return [headerReply(q.id, q.flags, NOTAUTH, question)];
    // Transfers need TCP; a UDP request is told to come back over TCP.
    if (t === 'udp') return [headerReply(q.id, q.flags, RCODE.NOERROR, question, true)];
    this.stats.transfers++;
    return transferMessages(zone, foldedQuestion(query, q.qEnd)).map((m) => {
      m.writeUInt16BE(q.id, 0);
      return m;
    });
  }
}
