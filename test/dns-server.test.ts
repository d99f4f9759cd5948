import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { encode } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter, recordsFor } from '../services/dns-db/domain/records.js';
import { ResponseRateLimiter } from '../services/dns-db/domain/rrl.js';
import { buildSnapshot, type ZoneSettings } from '../services/dns-db/domain/snapshot.js';
import { DnsEngine } from '../services/dns-db/server/engine.js';
import { type DnsListener, listenDns, waitListening } from '../services/dns-db/server/listen.js';
import type { AllocationSummary, NodeSummary } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { dig, ensureTool } from './helpers/dig.js';
import { nodeSummary } from './helpers/fixtures.js';

/** The server alone, fed a snapshot built by the same domain code the service uses; asked with real dig. */
const log = createLogger('dns-server-test', { level: process.env.TEST_LOG ?? 'silent' });
const domain = 'crowbar.test';
const settings: ZoneSettings = {
  nsName: `ns.${domain}`,
  nsAddresses: { v4: ['127.0.0.1'], v6: [] },
  hostmaster: `hostmaster.${domain}`,
  ttl: 60,
  refresh: 3600,
  retry: 600,
  expire: 86400,
  minimum: 30,
};

const node = (id: number, name: string): NodeSummary =>
  nodeSummary(id, name, { macs: [`52:54:00:00:00:0${id}`] });
const alloc = (id: number, nodeId: number, address: string, family: 'ipv4' | 'ipv6'): AllocationSummary => ({
  id,
  nodeId,
  node: '',
  networkId: 1,
  network: 'admin',
  category: 'admin',
  range: 'host',
  address,
  family,
});

const filters = [
  compileFilter({
    id: 1,
    name: 'default',
    priority: 50,
    matcher: 'net.category == "admin"',
    template: '{{node.name}}',
  }),
];
const nodes = [node(1, `n1.${domain}`), node(2, `big.${domain}`), node(3, `deep.sub.${domain}`)];
const allocs = [
  alloc(1, 1, '198.18.0.81/24', 'ipv4'),
  alloc(2, 1, 'fd12:3456:789a:1:aaaa:bbbb:cccc:dddd/64', 'ipv6'),
  // 40 addresses for one name: more than fits in 512 octets.
  ...Array.from({ length: 40 }, (_, i) => alloc(10 + i, 2, `198.18.1.${10 + i}/24`, 'ipv4')),
  alloc(60, 3, '198.18.0.90/24', 'ipv4'),
];

function snapshotFor(version: number) {
  const recs = allocs.flatMap((a) =>
    recordsFor(
      a,
      nodes.find((n) => n.id === a.nodeId),
      filters,
      domain,
    ),
  );
  const zones = [...new Set([domain, ...recs.map((r) => r.zone)])].map((name) => ({ name, serial: 7 }));
  return buildSnapshot(version, zones, recs, settings);
}

let listener: DnsListener;
let engine: DnsEngine;
let port: number;
const q = (args: string[]) => dig('127.0.0.1', port, args);

beforeAll(async () => {
  ensureTool('dig', 'bind9-dnsutils');
  engine = new DnsEngine({ maxUdp: 1232, transferAllowed: (a) => a === '127.0.0.2' });
  engine.install(snapshotFor(1));
  listener = listenDns({
    addresses: ['127.0.0.1', '127.0.0.2', '::1'],
    port: 0,
    engine,
    rrl: new ResponseRateLimiter({ ratePerSecond: 0, slip: 2, now: Date.now }),
    tcpIdleMs: 2000,
    maxTcpConnections: 50,
    retryBindMs: 60_000,
    log,
  });
  await waitListening(listener);
  port = listener.port()!;
});
afterAll(async () => {
  await listener?.stop();
});

describe('dns server (real dig)', () => {
  it('answers A authoritatively without recursion', async () => {
    const r = await q([`n1.${domain}`, 'A']);
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toContain('aa');
    expect(r.flags).not.toContain('ra');
    expect(r.answer).toEqual([{ name: `n1.${domain}.`, ttl: 60, type: 'A', data: '198.18.0.81' }]);
    expect(r.udpSize).toBe(1232);
  });

  it('answers AAAA and both kinds of PTR', async () => {
    expect((await q([`n1.${domain}`, 'AAAA'])).answer.map((a) => a.data)).toEqual([
      'fd12:3456:789a:1:aaaa:bbbb:cccc:dddd',
    ]);
    const v4 = await q(['-x', '198.18.0.81']);
    expect(v4.flags).toContain('aa');
    expect(v4.answer.map((a) => `${a.type} ${a.data}`)).toEqual([`PTR n1.${domain}.`]);
    const v6 = await q(['-x', 'fd12:3456:789a:1:aaaa:bbbb:cccc:dddd']);
    expect(v6.answer.map((a) => `${a.type} ${a.data}`)).toEqual([`PTR n1.${domain}.`]);
  });

  it('answers SOA and NS with glue', async () => {
    const soa = await q([domain, 'SOA']);
    expect(soa.answer[0]?.data).toBe(`ns.${domain}. hostmaster.${domain}. 7 3600 600 86400 30`);
    const ns = await q([domain, 'NS']);
    expect(ns.answer.map((a) => a.data)).toEqual([`ns.${domain}.`]);
    expect(ns.additional.filter((a) => a.type === 'A').map((a) => a.data)).toEqual(['127.0.0.1']);
  });

  it('says NXDOMAIN with the SOA for a missing name, NODATA for a missing type or an empty non-terminal', async () => {
    const nx = await q([`nope.${domain}`, 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.authority.map((a) => [a.type, a.ttl])).toEqual([['SOA', 30]]);
    const nodata = await q([`n1.${domain}`, 'MX']);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);
    expect(nodata.authority.map((a) => a.type)).toEqual(['SOA']);
    const ent = await q([`sub.${domain}`, 'A']);
    expect(ent.status).toBe('NOERROR');
    expect(ent.authority.map((a) => a.type)).toEqual(['SOA']);
  });

  it('refuses names outside its zones and does not recurse', async () => {
    const r = await q(['www.example.org', 'A']);
    expect(r.status).toBe('REFUSED');
    expect(r.flags).not.toContain('aa');
    expect(r.flags).not.toContain('ra');
  });

  it('matches names case-insensitively and echoes the question as asked', async () => {
    const r = await q([`N1.CrowBar.TEST`, 'A']);
    expect(r.answer.map((a) => a.data)).toEqual(['198.18.0.81']);
    expect(r.raw).toContain(';N1.CrowBar.TEST.');
  });

  it('answers over IPv6 loopback, UDP and TCP', async () => {
    for (const extra of [[], ['+tcp']]) {
      const r = await dig('::1', port, [...extra, `n1.${domain}`, 'AAAA']);
      expect(r.answer.map((a) => a.data)).toEqual(['fd12:3456:789a:1:aaaa:bbbb:cccc:dddd']);
    }
  });

  it('answers over TCP', async () => {
    const r = await q(['+tcp', `n1.${domain}`, 'A']);
    expect(r.status).toBe('NOERROR');
    expect(r.answer.map((a) => a.data)).toEqual(['198.18.0.81']);
  });

  it('sets TC when the answer does not fit UDP, and gives all of it over TCP', async () => {
    const udp = await q(['+ignore', '+noedns', `big.${domain}`, 'A']);
    expect(udp.flags).toContain('tc');
    expect(udp.answer).toEqual([]);
    const tcp = await q(['+tcp', `big.${domain}`, 'A']);
    expect(tcp.flags).not.toContain('tc');
    expect(tcp.answer).toHaveLength(40);
  });

  it('answers ANY minimally with one RRset', async () => {
    const r = await q([`n1.${domain}`, 'ANY']);
    expect(r.status).toBe('NOERROR');
    expect(new Set(r.answer.map((a) => a.type)).size).toBe(1);
    const apex = await q([domain, 'ANY']);
    expect(apex.answer.map((a) => a.type)).toEqual(['SOA']);
  });

  it('refuses AXFR by default and transfers to an allowed client', async () => {
    const refused = await q(['+tcp', domain, 'AXFR']);
    expect(refused.raw).toMatch(/Transfer failed|REFUSED/);
    const refusedBefore = engine.stats.transfersRefused;
    const ixfr = await q(['+tcp', domain, 'IXFR=1']);
    expect(ixfr.raw).toMatch(/Transfer failed|REFUSED/);
    // Refused by policy, not FORMERR: the SOA an IXFR carries in authority is legal.
    expect(engine.stats.transfersRefused).toBe(refusedBefore + 1);
    const allowed = await q(['-b', '127.0.0.2', '@127.0.0.2', domain, 'AXFR']);
    const lines = allowed.raw.split('\n').filter((l) => l.startsWith(`n1.${domain}.`));
    expect(lines.length).toBe(2);
    expect(allowed.raw.match(/\tSOA\t/g)?.length).toBe(2);
  });

  it('answers BADVERS to an EDNS version it does not speak', async () => {
    const r = await q(['+edns=1', '+noednsnegotiation', `n1.${domain}`, 'A']);
    expect(r.status).toBe('BADVERS');
  });

  it('answers FORMERR and NOTIMP to malformed or unsupported queries', async () => {
    const bad = encode({ type: 'query', id: 99, questions: [{ name: 'a.crowbar.test', type: 'A' }] });
    bad.writeUInt16BE(2, 4); // two questions, one present
    const notify = encode({
      type: 'query',
      id: 98,
      flags: 4 << 11,
      questions: [{ name: domain, type: 'SOA' }],
    });
    const replies = await sendRaw([bad, notify]);
    expect(replies.get(99)).toBe(1); // FORMERR
    expect(replies.get(98)).toBe(4); // NOTIMP
  });
});

describe('dns server transport limits', () => {
  it('rate-limits UDP responses per client prefix, slipping truncated replies', async () => {
    const rrl = new ResponseRateLimiter({ ratePerSecond: 10, slip: 2, now: Date.now });
    const limited = listenDns({
      addresses: ['127.0.0.1'],
      port: 0,
      engine,
      rrl,
      tcpIdleMs: 2000,
      maxTcpConnections: 10,
      retryBindMs: 60_000,
      log,
    });
    try {
      await waitListening(limited);
      const s = createSocket('udp4');
      let full = 0;
      let truncated = 0;
      s.on('message', (m) => (m[2]! & 0x02 ? truncated++ : full++));
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      const query = encode({ type: 'query', id: 1, questions: [{ name: `n1.${domain}`, type: 'A' }] });
      for (let i = 0; i < 100; i++) s.send(query, limited.port()!, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 500));
      s.close();
      expect(full).toBeGreaterThanOrEqual(10);
      expect(full).toBeLessThan(30);
      expect(truncated).toBeGreaterThan(20);
      expect(full + truncated).toBeLessThan(100);
      expect(rrl.stats.dropped).toBeGreaterThan(20);
    } finally {
      await limited.stop();
    }
  });

  it('answers pipelined TCP queries and closes idle connections', async () => {
    const frames = [1, 2].map((id) => {
      const m = encode({ type: 'query', id, questions: [{ name: `n1.${domain}`, type: 'A' }] });
      const f = Buffer.alloc(m.length + 2);
      f.writeUInt16BE(m.length, 0);
      m.copy(f, 2);
      return f;
    });
    const started = Date.now();
    const { ids, closedAfter } = await new Promise<{ ids: number[]; closedAfter: number }>(
      (resolve, reject) => {
        const sock = connect(port, '127.0.0.1');
        let got = Buffer.alloc(0);
        const timer = setTimeout(() => reject(new Error('server kept an idle connection open')), 8000);
        sock.on('connect', () => sock.write(Buffer.concat(frames)));
        sock.on('data', (d) => {
          got = Buffer.concat([got, d]);
        });
        sock.on('close', () => {
          clearTimeout(timer);
          const out: number[] = [];
          for (let o = 0; o + 2 <= got.length; o += 2 + got.readUInt16BE(o))
            out.push(got.readUInt16BE(o + 2));
          resolve({ ids: out, closedAfter: Date.now() - started });
        });
        sock.on('error', reject);
      },
    );
    expect(ids).toEqual([1, 2]);
    expect(closedAfter).toBeGreaterThanOrEqual(1500); // tcpIdleMs is 2000 in this file
  });

  it('keeps running, saying why, when its port is taken', async () => {
    const clash = listenDns({
      addresses: ['127.0.0.1'],
      port,
      engine,
      rrl: new ResponseRateLimiter({ ratePerSecond: 0, slip: 0, now: Date.now }),
      tcpIdleMs: 2000,
      maxTcpConnections: 10,
      retryBindMs: 60_000,
      log,
    });
    await waitListening(clash);
    expect(clash.status()).toEqual([
      { address: '127.0.0.1', listening: false, error: expect.stringMatching(/EADDRINUSE/) },
    ]);
    await clash.stop();
    expect((await q([`n1.${domain}`, 'A'])).status).toBe('NOERROR');
  });
});

/** Sends datagrams and collects id → rcode for whatever comes back within 500 ms. */
async function sendRaw(packets: Buffer[]): Promise<Map<number, number>> {
  const s = createSocket('udp4');
  const got = new Map<number, number>();
  s.on('message', (m) => got.set(m.readUInt16BE(0), m[3]! & 0x0f));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  for (const p of packets) s.send(p, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 500));
  s.close();
  return got;
}
