import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './helpers/dhcp-clients.js';
import { malformedCases } from './helpers/dhcp-malformed.js';
import {
  buildRequest,
  counterDelta,
  createRelayLab,
  DECLINE,
  type DhcpCounters,
  DISCOVER,
  INFORM,
  type Relay,
  type RelayLab,
  type RequestSpec,
  startRelay,
  sum,
} from './helpers/dhcp-relay.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * The DHCP server against bad input and storms, over the wire: every bad packet is dropped (or NAKed
 * where RFC 2131 says so) and counted by reason, and the service keeps serving. dhcp-db runs in this
 * process on a bridge carrying 198.18.112.10/24 (the admin network, its anonymous range .21–.80) and
 * 198.18.115.1/25 (`fuzznet`, the fuzzer's relayed network, so fuzzing does not use up the admin pool).
 * Relays sit in namespaces at 198.18.112.2 and 198.18.115.2; 198.18.115.128/25 is managed by nobody.
 */
const server = '198.18.112.10';
const adminRelay = '198.18.112.2';
const fuzzRelay = '198.18.115.2';
const domain = 'faults.test';
let t: TestEnv;
let stack: Stack;
let lab: RelayLab;
let relay: Relay;
let fuzzer: Relay;
let db: pg.Client;
let client: { ns: string; mac: string };
let node: { ns: string; mac: string };

const counters = async (): Promise<DhcpCounters> => {
  const r = await stack.call('GET', '/dhcp/stats');
  expect(r.status).toBe(200);
  return { received: r.body.received, replied: r.body.replied, dropped: r.body.dropped };
};
/** Counters once every packet sent has been handled (received and the outcomes stop moving). */
const settled = async (): Promise<DhcpCounters> => {
  let last = await counters();
  for (const end = Date.now() + 30_000; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await counters();
    const total = (c: DhcpCounters) => c.received + sum(c.replied) + sum(c.dropped);
    if (total(now) === total(last)) return now;
    last = now;
  }
  throw new Error('dhcp-db counters still moving after 30 s');
};
const inAdminPool = (ip: string) => {
  const last = Number(ip.split('.')[3]);
  return ip.startsWith('198.18.112.') && last >= 21 && last <= 80;
};
const hex = (b: Buffer) => b.toString('hex');
let xid = 0x1000;
const req = (s: Partial<RequestSpec>): Buffer =>
  buildRequest({ type: DISCOVER, mac: '02:df:aa:00:00:01', xid: xid++, giaddr: adminRelay, ...s });

beforeAll(async () => {
  lab = createRelayLab([`${server}/24`, '198.18.115.1/25']);
  const a = lab.addNamespace({ address: `${adminRelay}/24` });
  const f = lab.addNamespace({ address: `${fuzzRelay}/25` });
  client = lab.addNamespace({ mac: '02:df:c1:00:00:01' });
  node = lab.addNamespace({ mac: '02:df:c1:00:00:02' });
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'dhcp-db', 'dns-db', 'gateway'], {
    CROWBAR_ADMIN_CIDR: '198.18.112.0/24',
    CROWBAR_DHCP_INTERFACES: lab.bridge,
    CROWBAR_DNS_DOMAIN: domain,
    CROWBAR_DNS_ADDRESS: '127.0.0.1',
    CROWBAR_DNS_PORT: '0',
    CROWBAR_DNS_SERVERS: server,
    // Offers a stray fuzzed packet gets from the admin pool must not outlast the test that made them.
    CROWBAR_DHCP_OFFER_HOLD_S: '10',
  });
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
  const net = await stack.call('POST', '/networks', {
    name: 'fuzznet',
    conduit: '1g1',
    ranges: [{ name: 'dhcp', first: '198.18.115.10/25', last: '198.18.115.120/25' }],
  });
  expect(net.status).toBe(201);
  [relay, fuzzer] = await Promise.all([
    startRelay(a.ns, adminRelay, server),
    startRelay(f.ns, fuzzRelay, '198.18.115.1'),
  ]);
  // Both networks are served once an INFORM through each relay is answered.
  for (const [r, giaddr, ciaddr] of [
    [relay, adminRelay, '198.18.112.5'],
    [fuzzer, fuzzRelay, '198.18.115.5'],
  ] as const)
    await until(
      `dhcp-db to serve ${giaddr}`,
      async () => {
        const inform = buildRequest({ type: INFORM, mac: '02:df:ff:00:00:01', xid: xid++, giaddr, ciaddr });
        await r.run({ cmd: 'send', id: 'ready', packets: [hex(inform)], waitMs: 300 });
        return r.events.some((e) => e.ev === 'reply' && e.id.startsWith('ready#'));
      },
      30_000,
    );
}, 120_000);
afterAll(async () => {
  relay?.close();
  fuzzer?.close();
  await db?.end();
  await stack?.stop();
  await t?.cleanup();
  lab?.cleanup();
});

describe('dhcp-db under bad input and storms', () => {
  it('drops malformed and misdirected packets by reason, NAKs what RFC 2131 says to NAK', async () => {
    const cases = malformedCases(req, server);
    const before = await settled();
    const sent = await relay.run({
      cmd: 'send',
      id: 'table',
      packets: cases.map((c) => hex(c.packet)),
      waitMs: 1000,
    });
    expect(sent.sent).toBe(cases.length);
    const after = await settled();
    const d = counterDelta(before, after);

    const wantDrops: Record<string, number> = {};
    for (const c of cases) if (c.drop) wantDrops[c.drop] = (wantDrops[c.drop] ?? 0) + 1;
    const naks = cases.filter((c) => c.nak).length;
    const wantReplied: Record<string, number> = { nak: naks, ignored: 1 };
    expect({ received: d.received, dropped: d.dropped, replied: d.replied }).toEqual({
      received: cases.length,
      dropped: wantDrops,
      replied: wantReplied,
    });
    // Every NAK came back through the relay, broadcast-flagged, for its own request; nothing else answered.
    const replies = relay.events.filter((e) => e.ev === 'reply' && e.id.startsWith('table#'));
    const nakFor = new Set(replies.map((e) => (e.ev === 'reply' && e.reply.type === 'nak' ? e.index : -1)));
    for (const [i, c] of cases.entries()) expect(nakFor.has(i), c.what).toBe(c.nak === true);
    expect(replies).toHaveLength(naks);
  }, 60_000);

  it('survives 100,000 fuzzed packets, accounts for each one, and still serves a real client', async () => {
    const count = 100_000;
    const addresses = ['198.18.115.20', '198.18.115.60', '198.18.115.119', '198.18.115.200', '198.18.112.30'];
    const before = await settled();
    const started = Date.now();
    const done = await fuzzer.run({
      cmd: 'fuzz',
      id: 'fuzz',
      seed: 0xcbdf,
      count,
      rate: 5000,
      addresses,
      serverId: server,
    });
    const after = await settled();
    const d = counterDelta(before, after);
    const seconds = (Date.now() - started) / 1000;
    console.info(
      `fuzz: ${done.sent} packets (${done.bytes} bytes) in ${seconds.toFixed(1)} s; ` +
        `received ${d.received}; dropped ${JSON.stringify(d.dropped)}; replied ${JSON.stringify(d.replied)}; ` +
        `relay saw ${JSON.stringify(done.replies)}`,
    );
    expect(done.sent).toBe(count);
    // The kernel may drop a few under load; most must arrive. A few more than were sent is the server
    // hearing itself: a request whose giaddr was mutated into the server's own address is answered to
    // that address:67 (and then dropped as bad_op).
    expect(d.received).toBeGreaterThan(count * 0.9);
    expect(d.received).toBeLessThanOrEqual(count + 10);
    // Every packet that arrived ended in exactly one counter: dropped by reason or replied to.
    expect(sum(d.dropped) + sum(d.replied)).toBe(d.received);
    // No request made the engine throw.
    expect(d.dropped.internal ?? 0).toBe(0);
    // The parser's reasons and the engine's both came up: the fuzz reached past the parser.
    for (const reason of ['truncated', 'bad_op', 'bad_magic', 'option_overflow', 'no_end', 'oversize'])
      expect(d.dropped[reason] ?? 0, reason).toBeGreaterThan(0);
    expect(d.replied.offer ?? 0).toBeGreaterThan(0);
    expect(d.replied.nak ?? 0).toBeGreaterThan(0);

    const bound = await lab.udhcpc(client.ns, 'after-fuzz');
    expect(inAdminPool(bound.ip!)).toBe(true);
    expect(bound.serverid).toBe(server);
    expect(bound.subnet).toBe('255.255.255.0');
    expect((await counters()).received).toBeGreaterThan(after.received);
  }, 180_000);

  const decliner = '02:df:dd:00:00:01';
  const declinedBy = async (mac: string) =>
    (
      await db.query(
        `select count(*)::int as n from dhcp_db.leases where mac = $1 and state = 'declined' and expires_at > now()`,
        [mac],
      )
    ).rows[0].n as number;
  const holder = async (address: string) =>
    (await db.query(`select mac, state from dhcp_db.leases where address = $1::inet`, [address])).rows[0] as
      | { mac: string; state: string }
      | undefined;
  let kept: string;

  it('DECLINE storm: 5 declines per MAC quarantine 5 addresses; random DECLINEs quarantine nothing', async () => {
    const before = await settled();
    const done = await relay.run({
      cmd: 'dora',
      id: 'decline',
      macs: Array.from({ length: 12 }, () => decliner),
      rate: 20,
      concurrency: 1,
      timeoutMs: 2000,
      decline: true,
      afterDeclineMs: 200,
    });
    const acks = relay.acks('decline');
    expect(done).toMatchObject({ acks: 12, naks: 0, declines: 12 });
    // Five fresh leases declined, then the sixth address stays with the client whatever it says.
    const addresses = acks.map((a) => a.address);
    expect(new Set(addresses).size).toBe(6);
    expect(new Set(addresses.slice(5))).toEqual(new Set([addresses[5]]));
    for (const a of addresses) expect(inAdminPool(a)).toBe(true);
    kept = addresses[5]!;
    const mid = await settled();
    expect(counterDelta(before, mid)).toMatchObject({
      dropped: { decline_rate: 7 },
      replied: { offer: 12, ack: 12, declined: 5 },
    });
    expect(await declinedBy(decliner)).toBe(5);
    expect(await holder(kept)).toEqual({ mac: decliner, state: 'bound' });

    // Other MACs declining addresses they do not hold: held by the decliner, by the fuzz-test client,
    // and free ones. All dropped, nothing quarantined, nobody loses a lease.
    const clientLease = (
      await db.query(`select host(address) as a from dhcp_db.leases where mac = $1`, [client.mac])
    ).rows[0].a as string;
    const targets = [kept, clientLease, '198.18.112.60', '198.18.112.79', '198.18.112.200'];
    const flood = await relay.run({
      cmd: 'flood',
      id: 'rnd',
      kind: 'decline',
      count: 500,
      rate: 1000,
      addresses: targets,
    });
    const after = await settled();
    expect(counterDelta(mid, after)).toEqual({
      received: flood.sent,
      dropped: { decline_not_held: flood.sent },
      replied: {},
    });
    const quarantined = await db.query(
      `select count(*)::int as n from dhcp_db.leases where state = 'declined' and address << '198.18.112.0/24'`,
    );
    expect(quarantined.rows[0].n).toBe(5);
    expect(await holder(kept)).toEqual({ mac: decliner, state: 'bound' });
    expect(await holder(clientLease)).toEqual({ mac: client.mac, state: 'bound' });

    // After the storm, others are served.
    const others = await relay.run({
      cmd: 'dora',
      id: 'others',
      macBase: '02:df:d0',
      count: 3,
      rate: 10,
      concurrency: 3,
      timeoutMs: 2000,
    });
    expect(others).toMatchObject({ acks: 3 });
  }, 60_000);

  it('DECLINE limit holds across a flood of DECLINEs from other MACs', async () => {
    // 12,000 DECLINEs from fresh random MACs overflow the engine's per-MAC decline table (10,000
    // entries). Afterwards the decliner, past its 5 in these 10 minutes, declines its address once more.
    const before = await settled();
    const flood = await relay.run({
      cmd: 'flood',
      id: 'overflow',
      kind: 'decline',
      count: 12_000,
      rate: 4000,
      addresses: ['198.18.112.60'],
    });
    const mid = await settled();
    expect(counterDelta(before, mid).dropped.decline_not_held ?? 0).toBeGreaterThanOrEqual(10_000);
    expect(flood.sent).toBe(12_000);
    const decline = req({ type: DECLINE, mac: decliner, server, requested: kept });
    await relay.run({ cmd: 'send', id: 'again', packets: [hex(decline)], waitMs: 200 });
    const after = await settled();
    // BUG (services/dhcp-db/server/engine.ts, declineAllowed): `if (declines.size > 10_000) declines.clear()`
    // forgets every MAC's count, so a MAC that has used its 5 declines gets 5 more after any 10,000
    // DECLINEs from other (spoofable) MACs. Expected: dropped as decline_rate, the address kept.
    expect
      .soft(counterDelta(mid, after).dropped, 'BUG: decline limit reset by a flood from other MACs')
      .toEqual({
        decline_rate: 1,
      });
    expect
      .soft(await declinedBy(decliner), 'BUG: a 6th address quarantined for one MAC in 10 minutes')
      .toBe(5);
  }, 60_000);

  it('starvation: random MACs exhaust the anonymous range; a reserved node still gets its host address', async () => {
    const before = await settled();
    const done = await relay.run({
      cmd: 'dora',
      id: 'starve',
      macBase: '02:df:5a',
      count: 80,
      rate: 100,
      concurrency: 8,
      timeoutMs: 1000,
    });
    const held = await db.query(
      `select count(*)::int as n from dhcp_db.leases
       where address between '198.18.112.21' and '198.18.112.80' and state in ('bound', 'declined') and expires_at > now()`,
    );
    expect(held.rows[0].n).toBe(60);
    expect(done.acks as number).toBeGreaterThan(30);
    expect(done).toMatchObject({ naks: 0, noOffer: 80 - (done.acks as number) });
    const mid = await settled();
    expect(counterDelta(before, mid).dropped).toEqual({ pool_exhausted: 80 - (done.acks as number) });

    const flood = await relay.run({
      cmd: 'flood',
      id: 'more',
      kind: 'discover',
      count: 50,
      rate: 200,
      addresses: [server],
    });
    const after = await settled();
    expect(counterDelta(mid, after)).toEqual({ received: 50, dropped: { pool_exhausted: 50 }, replied: {} });
    expect(flood.replies).toEqual({});

    const n = await stack.call('POST', '/nodes', { name: `n1.${domain}`, mac: node.mac });
    expect(n.status).toBe(201);
    const alloc = await until('allocation', async () => {
      const r = await stack.call('POST', '/network_allocations', { node: n.body.id, network: 'admin' });
      return r.status < 300 ? r : null;
    });
    const hostAddress = /"(198\.18\.112\.\d+)\/24"/.exec(JSON.stringify(alloc.body))![1]!;
    expect(Number(hostAddress.split('.')[3])).toBeGreaterThanOrEqual(81);
    await until('the reservation', async () => {
      const r = await stack.call('GET', `/dhcp/reservations?node=${n.body.id}`);
      return r.body[0]?.address === hostAddress;
    });
    const bound = await lab.udhcpc(node.ns, 'reserved');
    expect(bound.ip).toBe(hostAddress);
    expect(bound.hostname).toBe('n1');
  }, 90_000);
});
