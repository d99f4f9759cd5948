import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { annealerMessages } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// Aliveness and availability as inventory and the annealer apply them (reference §4): a node dying
// ripples its noderoles, coming back re-anneals in order; an unavailable node is left alone.
let t: TestEnv;
let s: Stack;
let bus: Bus;
const events: { id: number; state: string }[] = [];
let a: number;
let b: number;

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  bus = await connectTestBus(t);
  bus.nc.subscribe(bus.subject('evt.noderole.>'), {
    callback: (_e, m) => {
      const d = JSON.parse(new TextDecoder().decode(m.data)).data;
      if (d.noderole) events.push({ id: d.noderole.id, state: d.noderole.state });
    },
  });
});
afterAll(async () => {
  await bus?.close();
  await s?.stop();
  await t?.cleanup();
});

const roles = async (node: number) =>
  Object.fromEntries(
    ((await s.call('GET', `/nodes/${node}/node_roles`)).body.noderoles as any[]).map((n) => [n.role, n]),
  );
const settled = () =>
  until('anneal finished', async () => (await s.call('GET', '/anneal')).status === 200, 30_000);

describe('aliveness and availability', () => {
  it('anneals two nodes with a cross-node edge', async () => {
    a = (await s.call('POST', '/nodes', { name: 'a.lab.crowbar.test', alive: true })).body.id;
    b = (await s.call('POST', '/nodes', { name: 'b.lab.crowbar.test', alive: true })).body.id;
    await s.call('POST', '/node_roles', { node: a, role: 'test-top' });
    await s.call('POST', '/node_roles', { node: a, role: 'test-shared' });
    const consumer = await s.call('POST', '/node_roles', { node: b, role: 'test-consumer' });
    const graph = await s.call('GET', '/deployments/system/graph');
    const shared = (await roles(a))['test-shared'];
    expect(graph.body.edges).toContainEqual({ parent: shared.id, child: consumer.body.id });
    await s.call('PUT', `/nodes/${a}/commit`);
    await s.call('PUT', `/nodes/${b}/commit`);
    await settled();
  });

  it('a node that dies: lowest cohort TODO, the rest BLOCKED, ACTIVE children elsewhere stay ACTIVE; back alive → re-anneal in order', async () => {
    const r = await s.call('PUT', `/nodes/${a}`, { alive: false });
    expect(r.body.alive).toBe(false);
    const ra = await roles(a);
    expect(ra['test-base'].state).toBe('todo');
    expect(ra['test-shared'].state).toBe('todo');
    expect(ra['test-middle'].state).toBe('blocked');
    expect(ra['test-top'].state).toBe('blocked');
    expect((await roles(b))['test-consumer'].state).toBe('active');
    await new Promise((res) => setTimeout(res, 1000));
    expect((await roles(a))['test-base'].state).toBe('todo'); // dead: nothing runs

    const from = events.length;
    await s.call('PUT', `/nodes/${a}`, { alive: true });
    await settled();
    const order = events
      .slice(from)
      .filter((e) => e.state === 'active')
      .map((e) => e.id);
    const ra2 = await roles(a);
    const pos = (role: string) => order.indexOf(ra2[role].id);
    expect(pos('test-base')).toBeGreaterThanOrEqual(0);
    expect(pos('test-base')).toBeLessThan(pos('test-middle'));
    expect(pos('test-middle')).toBeLessThan(pos('test-top'));
    for (const n of Object.values(ra2) as any[]) expect(n.runCount).toBe(2);
  });

  it('an unavailable node is left alone: no runs, states untouched; available again → annealing resumes', async () => {
    await s.call('PUT', `/nodes/${b}`, { available: false });
    const consumer = (await roles(b))['test-consumer'];
    expect(consumer.state).toBe('active');
    expect((await s.call('PUT', `/node_roles/${consumer.id}/retry`)).body.state).toBe('todo');
    await new Promise((res) => setTimeout(res, 1500));
    expect((await roles(b))['test-consumer'].state).toBe('todo');
    expect((await roles(b))['test-consumer'].runCount).toBe(1);
    await s.call('PUT', `/nodes/${b}`, { available: true });
    await until('consumer active', async () => (await roles(b))['test-consumer'].state === 'active', 20_000);
    expect((await roles(b))['test-consumer'].runCount).toBe(2);
  });

  it('re-runs an ACTIVE noderole in the high-priority lane without touching its children', async () => {
    const ra = await roles(a);
    const from = events.length;
    await bus.publish(annealerMessages.enqueue, { noderoleId: ra['test-middle'].id, reason: 'test' });
    const seen = () =>
      events
        .slice(from)
        .filter((e) => e.id === ra['test-middle'].id)
        .map((e) => e.state);
    // The run's end is committed before its event is relayed: wait for both.
    await until(
      're-run done',
      async () => (await roles(a))['test-middle'].runCount === 3 && seen().includes('active'),
      20_000,
    );
    expect(seen()).toEqual(['transition', 'active']);
    expect((await roles(a))['test-top'].runCount).toBe(2);
    expect((await roles(a))['test-top'].state).toBe('active');
  });

  it('stages run data with the closest ancestor winning (DESIGN §4, #4)', async () => {
    const n = (await s.call('POST', '/nodes', { name: 'merge.lab.crowbar.test', alive: true })).body.id;
    await s.call('POST', '/node_roles', { node: n, role: 'test-top' });
    const r = await roles(n);
    await s.call('PUT', `/node_roles/${r['test-base'].id}`, { data: { x: { v: 'base', onlyBase: 1 } } });
    await s.call('PUT', `/node_roles/${r['test-middle'].id}`, { data: { x: { v: 'middle' } } });
    await s.call('PUT', `/nodes/${n}/commit`);
    await settled();
    const db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    const run = await db.query(`select data from annealer.runs where noderole_id = $1 and state = 'done'`, [
      r['test-top'].id,
    ]);
    await db.end();
    expect(run.rows[0].data.x).toEqual({ v: 'middle', onlyBase: 1 });
    expect(run.rows[0].data.crowbar.node.name).toBe('merge.lab.crowbar.test');
  });

  it('binds bootstrap roles to a new admin node and refuses to delete the last admin node', async () => {
    const admin = await s.call('POST', '/nodes', { name: 'admin.lab.crowbar.test', admin: true });
    expect(Object.keys(await roles(admin.body.id))).toEqual(['test-admin']);
    const del = await s.call('DELETE', `/nodes/${admin.body.id}`);
    expect(del.status).toBe(409);
    expect(del.body.rule).toBe('last admin node');
    expect((await s.call('GET', `/nodes/admin`)).body.id).toBe(admin.body.id);
  });

  it('refuses an update made against a stale version (optimistic concurrency)', async () => {
    const n = (await s.call('GET', `/nodes/${b}`)).body;
    expect((await s.call('PUT', `/nodes/${b}`, { description: 'rack 4', version: n.version })).status).toBe(
      200,
    );
    const stale = await s.call('PUT', `/nodes/${b}`, { description: 'rack 5', version: n.version });
    expect(stale.status).toBe(409);
    expect(stale.body.rule).toBe('stale version');
    expect((await s.call('GET', `/nodes/${b}`)).body.description).toBe('rack 4');
  });
});
