import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { decode, encode, type Packet } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter, recordsFor } from '../services/dns-db/domain/records.js';
import { ResponseRateLimiter } from '../services/dns-db/domain/rrl.js';
import { buildSnapshot } from '../services/dns-db/domain/snapshot.js';
import { DnsEngine } from '../services/dns-db/server/engine.js';
import { type DnsListener, listenDns, waitListening } from '../services/dns-db/server/listen.js';
import { createLogger } from '../shared/log.js';
import { dig, ensureTool } from './helpers/dig.js';
import { nodeSummary } from './helpers/fixtures.js';
import { prng } from './helpers/prng.js';

/**
 * Mutation fuzzing over loopback: 100,000 datagrams and 1,000 TCP frames derived from valid queries by
 * a seeded generator (so a failure can be replayed), then a normal query must still be answered.
 */
const log = createLogger('dns-fuzz-test', { level: process.env.TEST_LOG ?? 'silent' });
const domain = 'fuzz.test';
const SEED = Number(process.env.DNS_FUZZ_SEED ?? 20261125);
const DATAGRAMS = 100_000;
const TCP_FRAMES = 1_000;

const { int } = prng(SEED);

const seeds: Buffer[] = (() => {
  const names = [
    `n1.${domain}`,
    domain,
    `x.${domain}`,
    '81.0.18.198.in-addr.arpa',
    'example.org',
    `N1.FUZZ.test`,
  ];
  const types = ['A', 'AAAA', 'PTR', 'SOA', 'NS', 'ANY', 'AXFR', 'TXT', 'MX'] as const;
  const out: Buffer[] = [];
  for (const name of names)
    for (const type of types) {
      const base: Packet = {
        type: 'query',
        id: int(65536),
        flags: 0x100,
        questions: [{ name, type: type as 'A' }],
      };
      out.push(encode(base));
      out.push(
        encode({
          ...base,
          additionals: [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: 4096,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0x8000,
              options: [],
            } as never,
          ],
        }),
      );
    }
  return out;
})();

function mutate(src: Buffer): Buffer {
  let b = Buffer.from(src);
  const ops = 1 + int(4);
  for (let i = 0; i < ops; i++) {
    switch (int(9)) {
      case 0: // flip bits
        for (let k = 0; k < 1 + int(8); k++) b[int(b.length)]! ^= 1 << int(8);
        break;
      case 1: // random byte
        b[int(b.length)] = int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, int(b.length + 1));
        break;
      case 3: // append junk
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + int(40) }, () => int(256)))]);
        break;
      case 4: // counts
        if (b.length >= 12) b.writeUInt16BE(int(4) === 0 ? int(65536) : int(3), 4 + 2 * int(4));
        break;
      case 5: // compression pointer (loops, forward refs) in the question
        if (b.length >= 14) b.writeUInt16BE(0xc000 | int(b.length + 20), 12);
        break;
      case 6: // oversized label length
        if (b.length > 13) b[12 + int(Math.min(20, b.length - 12))] = 64 + int(192);
        break;
      case 7: // opcode / flags
        if (b.length >= 4) b.writeUInt16BE(int(65536), 2);
        break;
      default: // pure noise
        b = Buffer.from(Array.from({ length: int(600) }, () => int(256)));
    }
  }
  return b;
}

let engine: DnsEngine;
let listener: DnsListener;
let port: number;

beforeAll(async () => {
  ensureTool('dig', 'bind9-dnsutils');
  const filters = [
    compileFilter({ id: 1, name: 'default', priority: 50, matcher: '', template: '{{node.name}}' }),
  ];
  const node = nodeSummary(1, `n1.${domain}`);
  const recs = recordsFor(
    {
      id: 1,
      nodeId: 1,
      node: '',
      networkId: 1,
      network: 'admin',
      category: 'admin',
      range: 'host',
      address: '198.18.0.81/24',
      family: 'ipv4',
    },
    node,
    filters,
    domain,
  );
  const settings = {
    nsName: `ns.${domain}`,
    nsAddresses: { v4: ['127.0.0.1'], v6: [] },
    hostmaster: `hostmaster.${domain}`,
    ttl: 60,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum: 30,
  };
  engine = new DnsEngine({ maxUdp: 1232, transferAllowed: () => false });
  engine.install(
    buildSnapshot(
      1,
      [domain, '0.18.198.in-addr.arpa'].map((name) => ({ name, serial: 1 })),
      recs,
      settings,
    ),
  );
  listener = listenDns({
    addresses: ['127.0.0.1'],
    port: 0,
    engine,
    // Off so every datagram reaches the parser; RRL has its own test.
    rrl: new ResponseRateLimiter({ ratePerSecond: 0, slip: 0, now: Date.now }),
    tcpIdleMs: 1000,
    maxTcpConnections: 64,
    retryBindMs: 60_000,
    log,
  });
  await waitListening(listener);
  port = listener.port()!;
});
afterAll(async () => {
  await listener?.stop();
});

describe('dns fuzz', () => {
  it(`survives ${DATAGRAMS} mutated datagrams and answers only with well-formed responses`, async () => {
    const sock = createSocket('udp4');
    let replies = 0;
    let malformedReplies = 0;
    sock.on('message', (m) => {
      replies++;
      try {
        if (decode(m).type !== 'response') malformedReplies++;
      } catch {
        malformedReplies++;
      }
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const deadline = Date.now() + 40_000;
    const before = engine.stats.queries;
    let sent = 0;
    while (sent < DATAGRAMS && Date.now() < deadline) {
      for (let i = 0; i < 200 && sent < DATAGRAMS; i++, sent++) {
        const p = mutate(seeds[int(seeds.length)]!);
        if (p.length > 0) sock.send(p, port, '127.0.0.1');
        else engine.stats.queries++; // an empty datagram cannot be sent; count it as handled
      }
      // Let the server keep up so the kernel does not drop what we mean to test.
      const waitUntil = Date.now() + 200;
      while (engine.stats.queries - before < sent - 100 && Date.now() < waitUntil)
        await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    sock.close();
    expect(sent).toBe(DATAGRAMS);
    expect(engine.stats.queries - before).toBeGreaterThanOrEqual(DATAGRAMS * 0.99);
    expect(engine.stats.internalErrors).toBe(0);
    expect(malformedReplies).toBe(0);
    expect(replies).toBeGreaterThan(1000);
    expect(engine.stats.formErr).toBeGreaterThan(1000);
    const after = await dig('127.0.0.1', port, [`n1.${domain}`, 'A']);
    expect(after.answer.map((a) => a.data)).toEqual(['198.18.0.81']);
  }, 60_000);

  it(`survives ${TCP_FRAMES} malformed TCP frames and still serves TCP`, async () => {
    let frames = 0;
    const deadline = Date.now() + 20_000;
    while (frames < TCP_FRAMES && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1');
        const done = () => {
          clearTimeout(timer);
          s.destroy();
          resolve();
        };
        const timer = setTimeout(done, 2000);
        s.on('error', done);
        s.on('close', done);
        s.on('data', () => undefined);
        s.on('connect', () => {
          const parts: Buffer[] = [];
          for (let i = 0; i < 20 && frames < TCP_FRAMES; i++, frames++) {
            const body = mutate(seeds[int(seeds.length)]!);
            const len = Buffer.alloc(2);
            // Mostly honest lengths, sometimes lies (too long, too short, zero).
            const kind = int(6);
            len.writeUInt16BE(kind === 0 ? int(65536) : kind === 1 ? int(12) : body.length);
            parts.push(len, body);
          }
          s.end(Buffer.concat(parts));
        });
      });
    }
    expect(frames).toBe(TCP_FRAMES);
    expect(engine.stats.internalErrors).toBe(0);
    const after = await dig('127.0.0.1', port, ['+tcp', `n1.${domain}`, 'A']);
    expect(after.answer.map((a) => a.data)).toEqual(['198.18.0.81']);
  }, 40_000);
});
