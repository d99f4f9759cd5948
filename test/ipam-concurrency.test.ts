import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/index.js';
import { inventoryEvents, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { nodeSummary } from './helpers/fixtures.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * Uniqueness under concurrency, over the real interface (HTTP through the gateway): the database
 * referees every address.
 */
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let db: pg.Client;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  t = await createTestEnv();
  // A small claim pool: the database server's 100 connections are shared with other test files.
  stack = await startStack(t, ['network-ipam', 'gateway'], {
    CROWBAR_BOOTSTRAP_ADMIN_NETWORK: 'false',
    CROWBAR_IPAM_DB_CONNECTIONS: '8',
  });
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'ipam-conc-test', log, streams });
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

const bulkNode = (id: number) => nodeSummary(id, `n${id}.bulk.example.com`);

/** Publishes node.created for ids [from, to) and waits until the projection holds them all. */
async function makeNodes(from: number, to: number) {
  for (let i = from; i < to; i += 500) {
    const ids = Array.from({ length: Math.min(500, to - i) }, (_, k) => i + k);
    await Promise.all(ids.map((id) => bus.publish(inventoryEvents.nodeCreated, { node: bulkNode(id) })));
  }
  const deadline = Date.now() + 45_000;
  for (;;) {
    const r = await db.query('select count(*)::int as n from network_ipam.nodes where id >= $1 and id < $2', [
      from,
      to,
    ]);
    if (r.rows[0].n === to - from) return;
    if (Date.now() > deadline) throw new Error(`projection holds ${r.rows[0].n} of ${to - from} nodes`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Runs `work` for every item with `width` requesters at a time. */
async function requesters<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!);
      }
    }),
  );
  return out;
}

/** 10,000 in `npm run bench -- ipam`; the test uses fewer so the file stays quick on a shared machine. */
const total = Number(process.env.IPAM_TEST_ALLOCATIONS ?? 1000);

describe('allocation under concurrency', () => {
  it(`50 concurrent requesters allocate ${total} addresses with no duplicates`, async () => {
    const net = await stack.call('POST', '/networks', {
      name: 'bulk',
      conduit: '10g0',
      ranges: [{ name: 'host', first: '198.19.0.1/18', last: '198.19.63.254/18' }],
    });
    expect(net.status).toBe(201);
    await makeNodes(1, total + 1);
    const ids = Array.from({ length: total }, (_, k) => k + 1);
    const started = Date.now();
    const res = await requesters(ids, 50, (id) =>
      stack.call('POST', '/network_allocations', { node: id, network: 'bulk' }),
    );
    const seconds = (Date.now() - started) / 1000;
    expect(res.filter((r) => r.status !== 201).map((r) => r.body)).toEqual([]);
    const addresses = res.flatMap((r) => r.body.allocations.map((a: any) => a.address));
    expect(addresses).toHaveLength(total);
    expect(new Set(addresses).size).toBe(total);
    const stored = await db.query(
      'select count(*)::int as n, count(distinct address)::int as d from network_ipam.allocations where network_id = $1',
      [net.body.id],
    );
    expect(stored.rows[0]).toEqual({ n: total, d: total });
    // Lowest-free: the allocations fill the range from its first address without holes.
    const top = await db.query(
      'select max(address) - min(address) + 1 as span from network_ipam.allocations where network_id = $1',
      [net.body.id],
    );
    expect(Number(top.rows[0].span)).toBe(total);
    console.log(
      `${total} allocations over HTTP by 50 requesters in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)}/s)`,
    );
  });

  it('300 nodes asking a /24 host range: exactly the free addresses succeed, the rest get a clean 409', async () => {
    const net = await stack.call('POST', '/networks', {
      name: 'small',
      conduit: '10g1',
      ranges: [{ name: 'host', first: '198.19.64.1/24', last: '198.19.64.254/24' }],
    });
    expect(net.status).toBe(201);
    await makeNodes(20_001, 20_301);
    const ids = Array.from({ length: 300 }, (_, k) => 20_001 + k);
    const res = await requesters(ids, 50, (id) =>
      stack.call('POST', '/network_allocations', { node: id, network: 'small' }),
    );
    const ok = res.filter((r) => r.status === 201);
    const refused = res.filter((r) => r.status !== 201);
    expect(ok).toHaveLength(254);
    expect(new Set(ok.map((r) => r.body.allocations[0].address)).size).toBe(254);
    expect(refused).toHaveLength(46);
    for (const r of refused) {
      expect(r.status).toBe(409);
      expect(r.body.message).toBe('range host of network small has no free address');
    }

    // Released addresses go back to the pool and are handed out again (lowest first).
    const released = ok.slice(0, 5).map((r) => r.body.allocations[0]);
    for (const a of released)
      expect((await stack.call('DELETE', `/network_allocations/${a.id}`)).status).toBe(200);
    const losers = ids.filter((id) => !ok.some((r) => r.body.allocations[0].nodeId === id)).slice(0, 6);
    const again = await requesters(losers, 6, (id) =>
      stack.call('POST', '/network_allocations', { node: id, network: 'small' }),
    );
    const reused = again
      .filter((r) => r.status === 201)
      .map((r) => r.body.allocations[0].address)
      .sort();
    expect(reused).toEqual(released.map((a) => a.address).sort());
    expect(again.filter((r) => r.status === 409)).toHaveLength(1);
  });

  it('deleting a network while its addresses are being claimed leaves no allocation behind', async () => {
    const net = await stack.call('POST', '/networks', {
      name: 'churn',
      conduit: '10g2',
      v6prefix: 'auto',
      ranges: [{ name: 'host', first: '198.19.66.1/24', last: '198.19.66.254/24' }],
    });
    expect(net.status).toBe(201);
    const ids = Array.from({ length: 120 }, (_, k) => 20_001 + k);
    const claims = requesters(ids, 30, (id) =>
      stack.call('POST', '/network_allocations', { node: id, network: 'churn' }),
    );
    await new Promise((r) => setTimeout(r, 150));
    const del = await stack.call('DELETE', '/networks/churn');
    expect(del.status).toBe(200);
    const res = await claims;
    // Every answer is clean: allocated before the delete, or the network/range is gone.
    for (const r of res) expect([201, 404, 409], JSON.stringify(r.body)).toContain(r.status);
    expect(res.some((r) => r.status === 201)).toBe(true);
    const orphans = await db.query(`select count(*)::int as n from network_ipam.allocations a
      where not exists (select 1 from network_ipam.ranges r where r.id = a.range_id)`);
    expect(orphans.rows[0].n).toBe(0);
    expect((await stack.call('GET', '/networks/churn')).status).toBe(404);
  });
});
