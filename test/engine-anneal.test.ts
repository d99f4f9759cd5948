import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { inventoryRpcs } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// 50 nodes × a three-level noop graph, annealed through the REST API by the real inventory, annealer and
// jig-runner, with the cap lowered to 5 so it binds. Invariants are watched in the database while it runs.
const NODES = 50;
const CAP = 5;
let t: TestEnv;
let s: Stack;
let db: pg.Client;
let bus: Bus;
/** Every noderole hook event seen by a plain subscriber, per noderole, in arrival order. */
const hooks = new Map<number, { state: string; from: string | null }[]>();

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_CAP: String(CAP),
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
  bus = await connectTestBus(t);
  bus.nc.subscribe(bus.subject('evt.noderole.>'), {
    callback: (_e, m) => {
      const d = JSON.parse(new TextDecoder().decode(m.data)).data;
      if (!d.noderole || m.subject.endsWith('.deleted.v1')) return;
      const list = hooks.get(d.noderole.id) ?? [];
      list.push({ state: d.noderole.state, from: d.from });
      hooks.set(d.noderole.id, list);
    },
  });
});
afterAll(async () => {
  await bus?.close();
  await db?.end();
  await s?.stop();
  await t?.cleanup();
});

describe('annealing 50 nodes', () => {
  it('reaches all ACTIVE with at most one TRANSITION per node and never more than the cap in flight', async () => {
    const ids: number[] = [];
    for (let i = 0; i < NODES; i++) {
      const r = await s.call('POST', '/nodes', { name: `n${i}.lab.crowbar.test`, alive: true });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
      const b = await s.call('POST', '/node_roles', { node: r.body.id, role: 'test-top' });
      expect(b.status).toBe(201);
    }
    expect((await s.call('GET', '/anneal')).status).toBe(200); // nothing committed yet

    let maxPerNode = 0;
    let maxInFlight = 0;
    let maxRunning = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r =
          await db.query(`select coalesce(max(c), 0)::int as per_node, coalesce(sum(c), 0)::int as total from
          (select count(*) as c from inventory.noderoles where state = 'transition' group by node_id) x`);
        const runs = await db.query(
          `select count(*)::int as n from annealer.runs where state in ('claimed', 'running')`,
        );
        maxPerNode = Math.max(maxPerNode, r.rows[0].per_node);
        maxInFlight = Math.max(maxInFlight, r.rows[0].total);
        maxRunning = Math.max(maxRunning, runs.rows[0].n);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();

    const started = Date.now();
    for (const id of ids) expect((await s.call('PUT', `/nodes/${id}/commit`)).status).toBe(200);
    await until('anneal finished', async () => (await s.call('GET', '/anneal')).status === 200, 120_000, 200);
    watching = false;
    await watcher;

    const all = await s.call('GET', '/node_roles?state=active');
    expect(all.body.noderoles.filter((n: any) => n.role.startsWith('test-')).length).toBe(NODES * 3);
    const notActive = await db.query(
      `select count(*)::int as n from inventory.noderoles where state <> 'active'`,
    );
    expect(notActive.rows[0].n).toBe(0);
    expect(maxPerNode).toBe(1);
    expect(maxInFlight).toBeLessThanOrEqual(CAP);
    expect(maxRunning).toBeLessThanOrEqual(CAP);
    expect(maxInFlight).toBeGreaterThan(1); // the cap is actually used, runs overlap across nodes
    // Every noderole ran exactly once.
    const runs = await db.query(
      `select noderole_id, count(*)::int as n from annealer.runs where state = 'done' group by noderole_id having count(*) > 1`,
    );
    expect(runs.rows).toEqual([]);
    // A subscriber sees each noderole's hooks in order: each one starts where the previous one ended.
    await until(
      'all hooks delivered',
      () => [...hooks.values()].filter((h) => h.at(-1)?.state === 'active').length >= NODES * 3,
      10_000,
    );
    for (const [id, seq] of hooks) {
      expect(seq[0], `noderole ${id}`).toEqual({ state: 'proposed', from: null });
      for (let i = 1; i < seq.length; i++)
        expect(seq[i]!.from, `noderole ${id} hook ${i}`).toBe(seq[i - 1]!.state);
      expect(seq.map((h) => h.state).slice(-2), `noderole ${id}`).toEqual(['transition', 'active']);
    }
    console.log(
      `50 nodes × 3 noderoles annealed in ${((Date.now() - started) / 1000).toFixed(1)} s; max in flight ${maxInFlight}/${CAP}`,
    );
  });

  it('refuses bad input with a clear status and changes nothing', async () => {
    const before = (await s.call('GET', '/nodes')).body.nodes.length;
    const bad = await s.call('POST', '/nodes', { name: 'not-an-fqdn' });
    expect(bad.status).toBe(422);
    expect(bad.body.field).toBe('name');
    expect((await s.call('POST', '/nodes', '{"name":')).status).toBe(422);
    expect((await s.call('POST', '/nodes', { name: 'n0.lab.crowbar.test' })).status).toBe(409);
    expect((await s.call('GET', '/nodes/999999')).status).toBe(404);
    expect(
      (await s.call('POST', '/node_roles', { node: 'n0.lab.crowbar.test', role: 'no-such-role' })).status,
    ).toBe(404);
    const retryActive = await s.call('PUT', '/deployments/system/propose');
    expect(retryActive.status).toBe(409);
    expect(retryActive.body.rule).toBe('system deployment');
    expect((await s.call('GET', '/nodes', undefined, 'wrong-token')).status).toBe(401);
    expect(
      (await s.call('POST', '/deployments', { name: 'x' }, 'test-readonly-token-0123456789')).status,
    ).toBe(403);
    expect((await s.call('GET', '/nodes')).body.nodes.length).toBe(before);
  });

  it('nests deployments and anneals a committed child deployment', async () => {
    expect((await s.call('POST', '/deployments', { name: 'racks' })).status).toBe(201);
    const child = await s.call('POST', '/deployments', { name: 'rack-1', parent: 'racks' });
    expect(child.body.parentId).toBeGreaterThan(1);
    const n = await s.call('POST', '/nodes', {
      name: 'deep.lab.crowbar.test',
      alive: true,
      available: true,
      deployment: 'rack-1',
    });
    const nr = await s.call('POST', '/node_roles', { node: n.body.id, role: 'test-base' });
    expect(nr.body.deployment).toBe('rack-1');
    // Proposed deployment: nothing runs.
    await new Promise((r) => setTimeout(r, 500));
    expect((await s.call('GET', `/node_roles/${nr.body.id}`)).body.state).toBe('proposed');
    expect((await s.call('PUT', '/deployments/rack-1/commit')).status).toBe(200);
    await until(
      'child deployment annealed',
      async () => (await s.call('GET', `/node_roles/${nr.body.id}`)).body.state === 'active',
    );
    const graph = await s.call('GET', '/deployments/rack-1/graph');
    expect(graph.body.vertices).toHaveLength(1);
    expect((await s.call('DELETE', '/deployments/racks')).status).toBe(409);
  });

  it('refuses bad bindings, a cycle and an illegal commit with 409/422, changing nothing', async () => {
    const n = (await s.call('POST', '/nodes', { name: 'bad.lab.crowbar.test', alive: true })).body.id;
    const shared = (await s.call('POST', '/node_roles', { node: n, role: 'test-shared' })).body;
    await s.call('PUT', `/nodes/${n}/commit`);
    await until(
      'test-shared active',
      async () => (await s.call('GET', `/node_roles/${shared.id}`)).body.state === 'active',
    );
    const before = (await s.call('GET', `/nodes/${n}/node_roles`)).body.noderoles;

    const abstract = await s.call('POST', '/node_roles', { node: n, role: 'test-abstract' });
    expect([abstract.status, abstract.body.field]).toEqual([422, 'role']);
    const rival = await s.call('POST', '/node_roles', { node: n, role: 'test-rival' });
    expect([rival.status, rival.body.rule]).toEqual([409, 'conflicts']);
    const twice = await s.call('POST', '/node_roles', { node: n, role: 'test-shared' });
    expect([twice.status, twice.body.rule]).toEqual([409, 'one noderole per role and node']);
    const active = shared;
    const commit = await s.call('PUT', `/node_roles/${active.id}/commit`);
    expect([commit.status, commit.body.code]).toEqual([409, 'invalid_transition']);
    expect((await s.call('GET', `/node_roles/${active.id}`)).body.state).toBe('active');

    const def = { barclamp: 'cyc', jig: 'noop', description: '', flags: [], template: {}, owner: null };
    await bus.request(inventoryRpcs.defineRole, { ...def, name: 'cyc-b', requires: [] });
    await bus.request(inventoryRpcs.defineRole, { ...def, name: 'cyc-a', requires: ['cyc-b'] });
    await expect(
      bus.request(inventoryRpcs.defineRole, { ...def, name: 'cyc-b', requires: ['cyc-a'] }),
    ).rejects.toThrow(/role requires form a cycle: (cyc-a -> cyc-b -> cyc-a|cyc-b -> cyc-a -> cyc-b)/);
    await expect(
      bus.request(inventoryRpcs.defineRole, { ...def, name: 'cyc-c', requires: ['nowhere'] }),
    ).rejects.toThrow(/requires nowhere, which no barclamp defines/);
    expect((await s.call('GET', '/roles/cyc-b')).body.requires).toEqual([]);
    expect((await s.call('GET', '/roles/cyc-c')).status).toBe(404);
    expect((await s.call('GET', `/nodes/${n}/node_roles`)).body.noderoles).toEqual(before);
  });
});
