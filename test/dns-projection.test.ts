import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsDbService } from '../services/dns-db/service.js';
import { decodeEnvelope } from '../shared/bus/bus.js';
import { Bus, streamName } from '../shared/bus/index.js';
import {
  type AllocationSummary,
  dnsMessages,
  inventoryEvents,
  ipamMessages,
  type NodeSummary,
  roleRun,
  streams,
} from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { hostService } from '../shared/service/host.js';
import { dig, ensureTool, quickLookup } from './helpers/dig.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { nodeSummary } from './helpers/fixtures.js';
import { type Stack, startStack } from './helpers/stack.js';

/** dns-db as a service: events in, real dig out; filters and zones over REST. */
const log = createLogger('dns-projection-test', { level: process.env.TEST_LOG ?? 'silent' });
const domain = 'crowbar.test';
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let port: number;
let clockMs = Date.now();
const dnsEnv = {
  CROWBAR_DNS_DOMAIN: domain,
  CROWBAR_DNS_ADDRESS: '127.0.0.1',
  CROWBAR_DNS_PORT: '0',
  CROWBAR_DNS_SERVERS: '127.0.0.1',
  CROWBAR_DNS_RRL_RATE: '0',
};

const node = (id: number, name: string): NodeSummary =>
  nodeSummary(id, name, {
    macs: [`52:54:00:00:00:${String(id).padStart(2, '0')}`],
    roles: ['crowbar-managed-node'],
  });
const alloc = (
  id: number,
  nodeId: number,
  address: string,
  category: 'admin' | 'bmc' = 'admin',
): AllocationSummary => ({
  id,
  nodeId,
  node: '',
  networkId: category === 'admin' ? 1 : 2,
  network: category === 'admin' ? 'admin' : 'bmc',
  category,
  range: 'host',
  address,
  family: address.includes(':') ? 'ipv6' : 'ipv4',
});

const q = (args: string[]) => dig('127.0.0.1', port, args);
const serial = async () => Number((await q([domain, 'SOA'])).answer[0]?.data.split(' ')[2]);
async function until<T>(what: string, f: () => Promise<T | false | null | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const addresses = async (name: string, type = 'A') =>
  (await q([name, type])).answer.map((a) => a.data).sort();
const tick = () => {
  clockMs += 1000;
};

beforeAll(async () => {
  ensureTool('dig', 'bind9-dnsutils');
  t = await createTestEnv();
  stack = await startStack(t, ['dns-db', 'gateway'], {
    ...dnsEnv,
    LOG_LEVEL: process.env.TEST_LOG ?? 'silent',
  });
  port = stack.services.get('dns-db')!.detail().dnsPort as number;
  bus = await Bus.connect({
    url: t.natsUrl,
    prefix: t.prefix,
    source: 'dns-test',
    log,
    streams,
    now: () => new Date(clockMs),
  });
});
afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

describe('dns-db projection (events → dig)', () => {
  it('makes a new node resolvable within a second of its address, A, AAAA and PTR', async () => {
    const before = await serial();
    tick();
    await bus.publish(inventoryEvents.nodeCreated, { node: node(1, `n1.${domain}`) });
    let started = Date.now();
    log.debug({ at: new Date().toISOString() }, 'publishing allocation');
    await bus.publish(ipamMessages.allocationCreated, { allocation: alloc(1, 1, '198.18.0.81/24') });
    // Timed with an in-process lookup (spawning dig costs more than the budget on a loaded machine).
    await until('A', async () => (await quickLookup(port, `n1.${domain}`, 'A'))?.data.length === 1, 1000);
    const aMs = Date.now() - started;
    started = Date.now();
    await bus.publish(ipamMessages.allocationCreated, { allocation: alloc(2, 1, 'fd12:3456:789a:1::51/64') });
    await until(
      'AAAA',
      async () => (await quickLookup(port, `n1.${domain}`, 'AAAA'))?.data.length === 1,
      1000,
    );
    const aaaaMs = Date.now() - started;
    expect(aMs).toBeLessThan(1000);
    expect(aaaaMs).toBeLessThan(1000);
    expect(await addresses(`n1.${domain}`)).toEqual(['198.18.0.81']);
    expect(await addresses(`n1.${domain}`, 'AAAA')).toEqual(['fd12:3456:789a:1::51']);
    expect((await q(['-x', '198.18.0.81'])).answer.map((a) => a.data)).toEqual([`n1.${domain}.`]);
    expect((await q(['-x', 'fd12:3456:789a:1::51'])).answer.map((a) => a.data)).toEqual([`n1.${domain}.`]);
    expect(await serial()).toBeGreaterThan(before);
  });

  it('gives non-admin addresses no name under the default filter (their reverse zone says NXDOMAIN)', async () => {
    tick();
    await bus.publish(ipamMessages.allocationCreated, { allocation: alloc(3, 1, '198.18.9.81/24', 'bmc') });
    await until('bmc reverse zone', async () => {
      const z = await stack.call('GET', '/dns/zones');
      return z.body.some((x: any) => x.zone === '9.18.198.in-addr.arpa');
    });
    expect(await addresses(`n1.${domain}`)).toEqual(['198.18.0.81']);
    const ptr = await q(['-x', '198.18.9.81']);
    expect(ptr.status).toBe('NXDOMAIN');
    expect(ptr.authority.map((a) => a.type)).toEqual(['SOA']);
  });

  it('renames: the new name resolves, the old one is NXDOMAIN, the PTR follows, the serial rises', async () => {
    const before = await serial();
    tick();
    await bus.publish(inventoryEvents.nodeChanged, { node: node(1, `r1.${domain}`), changed: ['name'] });
    await until(
      'new name',
      async () => (await quickLookup(port, `r1.${domain}`, 'A'))?.data.length === 1,
      1000,
    );
    expect((await q([`n1.${domain}`, 'A'])).status).toBe('NXDOMAIN');
    expect((await q(['-x', '198.18.0.81'])).answer.map((a) => a.data)).toEqual([`r1.${domain}.`]);
    expect(await serial()).toBeGreaterThan(before);
  });

  it('ignores an event older than what it has (out of order)', async () => {
    clockMs -= 10_000;
    await bus.publish(inventoryEvents.nodeChanged, { node: node(1, `stale.${domain}`), changed: ['name'] });
    clockMs += 10_000;
    await new Promise((r) => setTimeout(r, 400));
    expect((await q([`stale.${domain}`, 'A'])).status).toBe('NXDOMAIN');
    expect(await addresses(`r1.${domain}`)).toEqual(['198.18.0.81']);
  });

  it('name filters: CRUD over REST, several names per address, bad input refused', async () => {
    const list = await stack.call('GET', '/dns_name_filters');
    expect(list.status).toBe(200);
    expect(list.body.map((f: any) => [f.name, f.matcher, f.template, f.priority])).toEqual([
      ['default', 'net.category == "admin"', '{{node.name}}', 50],
    ]);
    const before = await serial();
    const created = await stack.call('POST', '/dns_name_filters', {
      name: 'by-mac',
      matcher: 'net.category == "admin", node.role has "crowbar-managed-node"',
      priority: 60,
      template: 'd{{node.mac}}',
    });
    expect(created.status).toBe(201);
    await until(
      'second name',
      async () => (await addresses(`d52-54-00-00-00-01.${domain}`)).length === 1,
      2000,
    );
    const ptr = (await q(['-x', '198.18.0.81'])).answer.map((a) => a.data).sort();
    expect(ptr).toEqual([`d52-54-00-00-00-01.${domain}.`, `r1.${domain}.`]);
    expect(await serial()).toBeGreaterThan(before);

    const bad = await stack.call('POST', '/dns_name_filters', {
      name: 'bad',
      matcher: 'net.color == "red"',
      template: '{{node.name}}',
    });
    expect(bad.status).toBe(422);
    expect(bad.body.field).toBe('matcher');
    const badTemplate = await stack.call('POST', '/dns_name_filters', {
      name: 'bad',
      priority: 70,
      template: '{{node.colour}}',
    });
    expect(badTemplate.status).toBe(422);
    expect(badTemplate.body.field).toBe('template');
    const dup = await stack.call('POST', '/dns_name_filters', {
      name: 'other',
      priority: 60,
      template: '{{node.name}}',
    });
    expect(dup.status).toBe(409);
    expect(dup.body.rule).toBe('unique_priority');
    const notJson = await stack.call('POST', '/dns_name_filters', '{nope');
    expect(notJson.status).toBe(422);

    const updated = await stack.call('PUT', '/dns_name_filters/by-mac', { template: 'm{{node.id}}' });
    expect(updated.body).toMatchObject({ priority: 60 });
    expect(updated.status).toBe(200);
    expect(updated.body.priority).toBe(60);
    await until('renamed by filter', async () => (await addresses(`m1.${domain}`)).length === 1, 2000);
    expect((await q([`d52-54-00-00-00-01.${domain}`, 'A'])).status).toBe('NXDOMAIN');

    const del = await stack.call('DELETE', `/dns_name_filters/${created.body.id}`);
    expect(del.status).toBe(200);
    await until('filter gone', async () => (await q([`m1.${domain}`, 'A'])).status === 'NXDOMAIN', 2000);
    expect((await stack.call('GET', '/dns_name_filters/by-mac')).status).toBe(404);
  });

  it('serves GET dns/zones/:zone as the server answers it', async () => {
    const z = await stack.call('GET', `/dns/zones/${domain}`);
    expect(z.status).toBe(200);
    expect(z.body.records[0].type).toBe('SOA');
    expect(z.body.serial).toBe(await serial());
    expect(z.body.records).toContainEqual({ name: `r1.${domain}`, type: 'A', ttl: 60, data: '198.18.0.81' });
    expect(z.body.records).toContainEqual({ name: `ns.${domain}`, type: 'A', ttl: 60, data: '127.0.0.1' });
    expect((await stack.call('GET', '/dns/zones/example.org')).status).toBe(404);
    const rev = await stack.call('GET', '/dns/zones/0.18.198.in-addr.arpa');
    expect(rev.body.records).toContainEqual({
      name: '81.0.18.198.in-addr.arpa',
      type: 'PTR',
      ttl: 60,
      data: `r1.${domain}`,
    });
  });

  it('replaying every event leaves the same zone and serial', async () => {
    const before = await stack.call('GET', `/dns/zones/${domain}`);
    const jsm = bus.jsm;
    const stream = streamName(t.prefix, 'EVENTS');
    const info = await jsm.streams.info(stream);
    let replayed = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!m || !/\.evt\.(node|allocation)\./.test(m.subject)) continue;
      const env = decodeEnvelope(m.data);
      await bus.publishEnvelope(m.subject.slice(t.prefix.length + 1), env, `replay-${seq}`);
      replayed++;
    }
    expect(replayed).toBeGreaterThanOrEqual(5);
    await new Promise((r) => setTimeout(r, 800));
    const after = await stack.call('GET', `/dns/zones/${domain}`);
    expect(after.body).toEqual(before.body);
  });

  it('deletes: the name is gone and the serial rises', async () => {
    const before = await serial();
    tick();
    await bus.publish(inventoryEvents.nodeDeleted, { node: node(1, `r1.${domain}`) });
    await until(
      'gone',
      async () => (await quickLookup(port, `r1.${domain}`, 'A'))?.rcode === 'NXDOMAIN',
      1000,
    );
    expect((await q([`r1.${domain}`, 'A'])).status).toBe('NXDOMAIN');
    expect((await q(['-x', '198.18.0.81'])).status).toBe('NXDOMAIN');
    expect(await serial()).toBeGreaterThan(before);
  });

  it('a second instance serves what the first one wrote (NOTIFY reload)', async () => {
    const second = await hostService(dnsDbService, {
      env: { ...t.env, ...dnsEnv, CROWBAR_INSTANCE: 'dns-db-second' },
    });
    try {
      const port2 = second.detail().dnsPort as number;
      expect(port2).not.toBe(port);
      tick();
      await bus.publish(inventoryEvents.nodeCreated, { node: node(5, `n5.${domain}`) });
      await bus.publish(ipamMessages.allocationCreated, { allocation: alloc(50, 5, '198.18.0.85/24') });
      // Either instance may take the events (shared durable consumers); both must answer.
      for (const p of [port, port2])
        await until(
          `n5 on ${p}`,
          async () => (await quickLookup(p, `n5.${domain}`, 'A'))?.data[0] === '198.18.0.85',
          15_000,
        );
      const s1 = (await dig('127.0.0.1', port, [domain, 'SOA'])).answer[0]?.data;
      await until(
        'same serial',
        async () => (await dig('127.0.0.1', port2, [domain, 'SOA'])).answer[0]?.data === s1,
        15_000,
      );
    } finally {
      await second.stop('test done');
    }
  });

  it('hands dns-client its servers and domain (role run and RPC)', async () => {
    const run = await bus.request(roleRun['dns-db'], {
      runId: 1,
      noderoleId: 1,
      role: 'dns-service',
      nodeId: 1,
      node: `n1.${domain}`,
      data: {},
    });
    expect(run.wall).toEqual({ dns: { servers: ['127.0.0.1'], domain } });
    expect(await bus.request(dnsMessages.clientConfig, {})).toEqual({ servers: ['127.0.0.1'], domain });
    const rest = await stack.call('GET', '/dns/client');
    expect(rest.body).toEqual({ servers: ['127.0.0.1'], domain });
  });

  it('reports the owners being unavailable for an on-demand re-sync, and keeps serving', async () => {
    const r = await stack.call('POST', '/dns/resync');
    expect(r.status).toBe(503);
    expect((await q([domain, 'SOA'])).status).toBe('NOERROR');
  });
});
