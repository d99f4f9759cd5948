import { encode } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { parseMatcher, parseTemplate } from '../services/dns-db/domain/filters.js';
import { compressV6, parseCidr, reverseName, reverseZone } from '../services/dns-db/domain/names.js';
import { compileFilter, diffRecords, placeName, recordsFor } from '../services/dns-db/domain/records.js';
import { prefixOf, ResponseRateLimiter } from '../services/dns-db/domain/rrl.js';
import { MalformedQuery, parseQuery, questionName } from '../services/dns-db/domain/wire.js';
import { dnsDbService } from '../services/dns-db/service.js';
import type { AllocationSummary, NodeSummary } from '../shared/catalogue/index.js';
import { ConfigError } from '../shared/config.js';
import { loadServiceConfig } from '../shared/service/host.js';
import { nodeSummary } from './helpers/fixtures.js';

/** Pure parts of dns-db, table-driven. */
const node: NodeSummary = nodeSummary(7, 'd52-54-00-12-34-56.crowbar.test', {
  deploymentId: 3,
  deployment: 'ceph',
  macs: ['52:54:00:12:34:56', '52:54:00:AA:BB:CC'],
  roles: ['crowbar-managed-node', 'ceph-osd'],
});
const allocation: AllocationSummary = {
  id: 5,
  nodeId: 7,
  node: node.name,
  networkId: 2,
  network: 'storage',
  category: 'general',
  range: 'host',
  address: '198.19.1.20/24',
  family: 'ipv4',
};
const ctx = { node, allocation };

describe('names', () => {
  it.each([
    ['198.18.0.81', '81.0.18.198.in-addr.arpa'],
    ['fd12:3456:789a:1::51', '1.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa'],
  ])('reverse name of %s', (a, want) => expect(reverseName(a)).toBe(want));

  it.each([
    ['198.18.0.81', 24, '0.18.198.in-addr.arpa'],
    ['198.18.0.81', 26, '0.18.198.in-addr.arpa'],
    ['198.18.0.81', 20, '18.198.in-addr.arpa'],
    ['198.18.0.81', 0, '198.in-addr.arpa'],
    ['fd12:3456:789a:1::51', 64, '1.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa'],
    ['fd12:3456:789a:1::51', 0, '2.1.d.f.ip6.arpa'],
  ])('reverse zone of %s/%i', (a, p, want) => expect(reverseZone(a, p)).toBe(want));

  it.each([
    ['fd12:0:0:1:0:0:0:51', 'fd12:0:0:1::51'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fd00:0:0:0:1:0:0:0', 'fd00::1:0:0:0'],
  ])('canonical v6 %s', (a, want) => expect(compressV6(a)).toBe(want));

  it.each(['198.18.0.1/33', '198.18.0.1/x', 'nope/24', '198.18.0.1/24/1', 'fd00::1/129'])(
    'refuses CIDR %s',
    (c) => expect(parseCidr(c)).toBeNull(),
  );
});

describe('name filters', () => {
  it.each([
    ['', true],
    ['net.category == "general"', true],
    ['net.category == "admin"', false],
    ['net.name == "storage", range.name == "host"', true],
    ['deployment.name == "ceph"', true],
    ['node.role has "ceph-osd"', true],
    ['node.role has "nova"', false],
    ['node.attr.bootenv == "local", node.attr.admin == "false"', true],
    ['net.name == "a,b"', false],
  ])('matcher %j → %s', (m, want) => expect(parseMatcher(m)(ctx)).toBe(want));

  it.each([
    ['net.colour == "red"', /cannot read test/],
    ['node.attr.colour == "red"', /unknown node attribute "colour"/],
    ['net.category = "admin"', /cannot read test/],
  ])('refuses matcher %j naming the problem', (m, err) => expect(() => parseMatcher(m)).toThrow(err));

  it.each([
    ['{{node.name}}', node.name],
    ['{{node.hostname}}-{{network.name}}', 'd52-54-00-12-34-56-storage'],
    ['m{{ node.mac }}', 'm52-54-00-12-34-56'],
    ['n{{node.id}}.{{node.deployment}}', 'n7.ceph'],
    ['{{network.range}}-{{network.category}}', 'host-general'],
  ])('template %j', (t, want) => expect(parseTemplate(t)(ctx)).toBe(want));

  it('refuses unknown placeholders and odd literal text', () => {
    expect(() => parseTemplate('{{node.colour}}')).toThrow(/unknown placeholder/);
    expect(() => parseTemplate('a b{{node.id}}')).toThrow(/literal text/);
  });

  it('a template needing a MAC the node lacks yields no name', () => {
    expect(parseTemplate('{{node.mac}}')({ node: { ...node, macs: [] }, allocation })).toBeNull();
  });

  it.each([
    ['n1.crowbar.test', 'n1.crowbar.test'],
    ['N1.Crowbar.Test.', 'n1.crowbar.test'],
    ['bmc7', 'bmc7.crowbar.test'],
    ['n1.elsewhere.org', null],
  ])('places %s in the domain', (n, want) => expect(placeName(n, 'crowbar.test')).toBe(want));
});

describe('records', () => {
  const filters = [
    compileFilter({ id: 1, name: 'default', priority: 50, matcher: '', template: '{{node.name}}' }),
    compileFilter({
      id: 2,
      name: 'net',
      priority: 60,
      matcher: '',
      template: '{{node.hostname}}-{{network.name}}',
    }),
    compileFilter({ id: 3, name: 'outside', priority: 70, matcher: '', template: 'x.example.org' }),
  ];

  it('derives A and PTR per matching filter, skipping names outside the domain', () => {
    const skipped: { reason: string }[] = [];
    const got = recordsFor(allocation, node, filters, 'crowbar.test', skipped as never);
    expect(got.map((r) => `${r.type} ${r.zone} ${r.name} ${r.data}`)).toEqual([
      `A crowbar.test ${node.name} 198.19.1.20`,
      `PTR 1.19.198.in-addr.arpa 20.1.19.198.in-addr.arpa ${node.name}`,
      'A crowbar.test d52-54-00-12-34-56-storage.crowbar.test 198.19.1.20',
      'PTR 1.19.198.in-addr.arpa 20.1.19.198.in-addr.arpa d52-54-00-12-34-56-storage.crowbar.test',
    ]);
    expect(skipped[0]?.reason).toMatch(/outside the cluster domain/);
    expect(recordsFor(allocation, undefined, filters, 'crowbar.test')).toEqual([]);
  });

  it('diffs to nothing when nothing changed, and names the zones a change touches', () => {
    const a = recordsFor(allocation, node, filters, 'crowbar.test');
    expect(diffRecords(a, a).zones.size).toBe(0);
    const renamed = recordsFor(allocation, { ...node, name: 'r.crowbar.test' }, filters, 'crowbar.test');
    const d = diffRecords(a, renamed);
    expect([...d.zones].sort()).toEqual(['1.19.198.in-addr.arpa', 'crowbar.test']);
    expect(d.upsert).toHaveLength(4);
    expect(diffRecords(a, []).remove).toHaveLength(4);
  });
});

describe('query parsing', () => {
  const good = encode({
    type: 'query',
    id: 42,
    questions: [{ name: 'N1.Crowbar.Test', type: 'A' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0x8000, options: [] } as never],
  });

  it('reads a normal query with EDNS', () => {
    const q = parseQuery(good)!;
    expect(q).toMatchObject({
      id: 42,
      opcode: 0,
      qtype: 1,
      qclass: 1,
      edns: { udpSize: 4096, version: 0, dnssecOk: true },
    });
    expect(questionName(good)).toBe('n1.crowbar.test');
  });

  const mutated = (f: (b: Buffer) => Buffer) => f(Buffer.from(good));
  const set16 = (at: number, v: number) => (b: Buffer) => {
    b.writeUInt16BE(v, at);
    return b;
  };
  it.each([
    ['a pointer in the question', set16(12, 0xc00c), /compressed/],
    ['two questions', set16(4, 2), /question count 2/],
    ['trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([1])]), /trailing bytes/],
    ['a truncated OPT', (b: Buffer) => b.subarray(0, b.length - 3), /truncated/],
    ['an answer in a query', set16(6, 1), /answer or authority/],
  ])('refuses %s', (_what, f, err) => {
    expect(() => parseQuery(mutated(f))).toThrow(MalformedQuery);
    expect(() => parseQuery(mutated(f))).toThrow(err);
  });

  it('drops responses and runts silently', () => {
    expect(parseQuery(Buffer.alloc(5))).toBeNull();
    expect(parseQuery(mutated(set16(2, 0x8100)))).toBeNull();
  });

  it('escapes label bytes that would confuse names', () => {
    const b = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1]);
    expect(parseQuery(b)).not.toBeNull();
    expect(questionName(b)).toBe('a\\046b');
  });
});

describe('response rate limiting', () => {
  it('allows the rate per prefix, then slips every n-th and drops the rest; refills with time', () => {
    let now = 0;
    const rrl = new ResponseRateLimiter({ ratePerSecond: 5, slip: 2, now: () => now });
    const verdicts = Array.from({ length: 10 }, () => rrl.check('198.51.100.7'));
    expect(verdicts).toEqual([
      'send',
      'send',
      'send',
      'send',
      'send',
      'drop',
      'slip',
      'drop',
      'slip',
      'drop',
    ]);
    expect(rrl.check('198.51.101.7')).toBe('send'); // another /24
    expect(rrl.check('198.51.100.200')).toBe('slip'); // same /24: the sixth limited one
    now += 1000;
    expect(rrl.check('198.51.100.7')).toBe('send');
    expect(new ResponseRateLimiter({ ratePerSecond: 0, slip: 2, now: () => 0 }).check('1.2.3.4')).toBe(
      'send',
    );
  });

  it.each([
    ['198.51.100.7', '198.51.100'],
    ['::ffff:198.51.100.7', '198.51.100'],
    ['2001:db8:1:2a00::1', '20010db800012a'],
  ])('prefix of %s', (a, want) => expect(prefixOf(a)).toBe(want));
});

describe('config', () => {
  it('names every bad variable', () => {
    const env = {
      CROWBAR_DNS_ADDRESS: '127.0.0.1,nope',
      CROWBAR_DNS_PORT: '70000',
      CROWBAR_DNS_DOMAIN: 'bad domain',
    };
    try {
      loadServiceConfig(dnsDbService, env);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const msg = (e as Error).message;
      for (const v of ['CROWBAR_DNS_ADDRESS', 'CROWBAR_DNS_PORT', 'CROWBAR_DNS_DOMAIN'])
        expect(msg).toContain(v);
    }
  });
});
