import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dig, ensureTool } from './helpers/dig.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/** dns-db with the real owners: inventory and network-ipam over REST, answers checked with dig. */
const domain = 'crowbar.test';
let t: TestEnv;
let stack: Stack;
let port: number;

const q = (args: string[]) => dig('127.0.0.1', port, args);
async function until<T>(
  what: string,
  f: () => Promise<T | false | null | undefined>,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  ensureTool('dig', 'bind9-dnsutils');
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'dns-db', 'gateway'], {
    CROWBAR_DNS_DOMAIN: domain,
    CROWBAR_DNS_ADDRESS: '127.0.0.1',
    CROWBAR_DNS_PORT: '0',
    CROWBAR_DNS_SERVERS: '127.0.0.1',
    CROWBAR_DNS_RRL_RATE: '0',
  });
  port = stack.services.get('dns-db')!.detail().dnsPort as number;
});
afterAll(async () => {
  await stack?.stop();
  await t?.cleanup();
});

describe('dns-db with inventory and network-ipam', () => {
  let nodeId: number;
  let v4: string;
  let v6: string;

  it("serves the admin network's reverse zones before any address is allocated", async () => {
    const admin = await stack.call('GET', '/networks/admin');
    expect(admin.status).toBe(200);
    const v6Free = `${admin.body.v6prefix}::abcd`;
    await until('v4 reverse zone', async () => (await q(['-x', '198.18.0.200'])).status === 'NXDOMAIN');
    const r = await q(['-x', v6Free]);
    expect(r.status).toBe('NXDOMAIN');
    expect(r.flags).toContain('aa');
    expect(r.authority.map((a) => a.type)).toEqual(['SOA']);
  });

  it('resolves a node created and allocated through the API (A, AAAA, PTR)', async () => {
    const n = await stack.call('POST', '/nodes', { name: `n1.lab.${domain}` });
    expect(n.status).toBe(201);
    nodeId = n.body.id;
    // network-ipam learns the node from the same event stream; allocation may need a moment.
    const alloc = await until('allocation', async () => {
      const r = await stack.call('POST', '/network_allocations', { node: nodeId, network: 'admin' });
      return r.status < 300 ? r : null;
    });
    const list = JSON.stringify(alloc.body);
    v4 = /"(198\.18\.0\.\d+)\/24"/.exec(list)![1]!;
    v6 = /"([0-9a-f:]+)\/64"/.exec(list)![1]!;
    await until('A', async () => (await q([`n1.lab.${domain}`, 'A'])).answer.length === 1);
    expect((await q([`n1.lab.${domain}`, 'A'])).answer.map((a) => a.data)).toEqual([v4]);
    await until('AAAA', async () => (await q([`n1.lab.${domain}`, 'AAAA'])).answer.length === 1);
    expect((await q(['-x', v4])).answer.map((a) => a.data)).toEqual([`n1.lab.${domain}.`]);
    expect((await q(['-x', v6])).answer.map((a) => a.data)).toEqual([`n1.lab.${domain}.`]);
  });

  it('follows a rename and a delete made through the API', async () => {
    const r = await stack.call('PUT', `/nodes/${nodeId}`, { name: `r1.lab.${domain}` });
    expect(r.status).toBe(200);
    await until('renamed', async () => (await q([`r1.lab.${domain}`, 'A'])).answer.length === 1);
    expect((await q([`n1.lab.${domain}`, 'A'])).status).toBe('NXDOMAIN');
  });

  it('re-syncs on demand from the owners and removes what they no longer have', async () => {
    // A record the owners never had, as if its delete event had been lost.
    const c = new pg.Client({ connectionString: t.databaseUrl });
    await c.connect();
    try {
      const old = '2000-01-01T00:00:00Z';
      await c.query(
        `insert into dns_db.nodes (id, summary, deleted, source_time) values (9999, $1, false, $2)`,
        [JSON.stringify({ id: 9999, name: `ghost.${domain}` }), old],
      );
      await c.query(
        `insert into dns_db.allocations (id, node_id, summary, deleted, source_time) values (9999, 9999, $1, false, $2)`,
        [JSON.stringify({ id: 9999, nodeId: 9999, address: '198.18.0.250/24' }), old],
      );
      await c.query(
        `insert into dns_db.records (allocation_id, filter_id, type, zone, name, data) values (9999, 1, 'A', $1, $2, '198.18.0.250')`,
        [domain, `ghost.${domain}`],
      );
      await c.query(`select pg_notify('dns_db_records', '')`);
    } finally {
      await c.end();
    }
    await until('ghost served', async () => (await q([`ghost.${domain}`, 'A'])).answer.length === 1);
    const before = Number((await q([domain, 'SOA'])).answer[0]!.data.split(' ')[2]);
    const r = await stack.call('POST', '/dns/resync');
    expect(r.body).toMatchObject({ nodes: expect.any(Number) });
    expect(r.status).toBe(200);
    expect(r.body.nodes).toBeGreaterThanOrEqual(1);
    expect(r.body.allocations).toBeGreaterThanOrEqual(2);
    expect(r.body.changedZones).toContain(domain);
    await until('ghost gone', async () => (await q([`ghost.${domain}`, 'A'])).status === 'NXDOMAIN');
    expect(Number((await q([domain, 'SOA'])).answer[0]!.data.split(' ')[2])).toBeGreaterThan(before);
    expect((await q([`r1.lab.${domain}`, 'A'])).answer.map((a) => a.data)).toEqual([v4]);
  });

  it('removes the names of a deleted node', async () => {
    const r = await stack.call('DELETE', `/nodes/${nodeId}`);
    expect(r.status).toBeLessThan(300);
    await until('gone', async () => (await q([`r1.lab.${domain}`, 'A'])).status === 'NXDOMAIN');
    expect((await q(['-x', v4])).status).toBe('NXDOMAIN');
  });
});
