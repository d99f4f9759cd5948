import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type ServiceProcess, spawnService } from './helpers/process.js';
import { type Stack, startStack } from './helpers/stack.js';

// Two annealer processes side by side for 60 s while noderoles are retried and nodes die and come back:
// no run is dispatched twice, no node ever has two runs at once, and everything converges afterwards.
const NODES = 20;
const CHURN_MS = 60_000;
const CAP = 6;
let t: TestEnv;
let s: Stack;
let db: pg.Client;
const annealers: ServiceProcess[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'jig-runner', 'gateway']);
  const env = { ...t.env, CROWBAR_ANNEAL_CAP: String(CAP), CROWBAR_ANNEAL_PASS_MS: '100' };
  annealers.push(...(await Promise.all([spawnService('annealer', env), spawnService('annealer', env)])));
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  for (const a of annealers) await a.stop();
  await db?.end();
  await s?.stop();
  await t?.cleanup();
});

it('two annealers under 60 s of churn: zero double dispatches', async () => {
  const nodes: number[] = [];
  for (let i = 0; i < NODES; i++) {
    const n = await s.call('POST', '/nodes', { name: `churn${i}.lab.crowbar.test`, alive: true });
    await s.call('POST', '/node_roles', { node: n.body.id, role: 'test-top' });
    await s.call('PUT', `/nodes/${n.body.id}/commit`);
    nodes.push(n.body.id);
  }
  let maxPerNode = 0;
  let maxInFlight = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const r =
        await db.query(`select coalesce(max(c), 0)::int as per_node, coalesce(sum(c), 0)::int as total from
        (select count(*) as c from inventory.noderoles where state = 'transition' group by node_id) x`);
      maxPerNode = Math.max(maxPerNode, r.rows[0].per_node);
      maxInFlight = Math.max(maxInFlight, r.rows[0].total);
      await new Promise((res) => setTimeout(res, 10));
    }
  })();

  const end = Date.now() + CHURN_MS;
  let retries = 0;
  let deaths = 0;
  for (let i = 0; i < 2000 && Date.now() < end; i++) {
    const node = nodes[Math.floor(Math.random() * nodes.length)]!;
    if (Math.random() < 0.7) {
      const active = (await s.call('GET', `/node_roles?node=${node}&state=active`)).body.noderoles;
      const pick = active[Math.floor(Math.random() * active.length)];
      if (pick && (await s.call('PUT', `/node_roles/${pick.id}/retry`)).status === 200) retries++;
    } else {
      await s.call('PUT', `/nodes/${node}`, { alive: false });
      await new Promise((r) => setTimeout(r, 50));
      await s.call('PUT', `/nodes/${node}`, { alive: true });
      deaths++;
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  await until('converged', async () => (await s.call('GET', '/anneal')).status === 200, 120_000, 200);
  watching = false;
  await watcher;

  const dupRuns = await db.query(
    `select run_id, count(*)::int as n from jig_runner.runlogs group by run_id having count(*) > 1`,
  );
  expect(dupRuns.rows).toEqual([]);
  const overlaps = await db.query(`
    select a.id, b.id from annealer.runs a join annealer.runs b on a.node_id = b.node_id and a.id < b.id
    where a.dispatched_at is not null and b.dispatched_at is not null
      and tstzrange(a.dispatched_at, coalesce(a.finished_at, now())) && tstzrange(b.dispatched_at, coalesce(b.finished_at, now()))`);
  expect(overlaps.rows).toEqual([]);
  const perNoderole = await db.query(`
    select a.id from annealer.runs a join annealer.runs b on a.noderole_id = b.noderole_id and a.id < b.id
    where tstzrange(a.created_at, coalesce(a.finished_at, now())) && tstzrange(b.created_at, coalesce(b.finished_at, now()))
      and a.state <> 'cancelled' and b.state <> 'cancelled'`);
  expect(perNoderole.rows).toEqual([]);
  expect(maxPerNode).toBe(1);
  expect(maxInFlight).toBeLessThanOrEqual(CAP);
  const done = await db.query(`select count(*)::int as n from annealer.runs where state = 'done'`);
  const dispatchedBy = annealers.map((a) => a.lines.filter((l) => l.includes('"run dispatched"')).length);
  console.log(
    `churn: ${retries} retries, ${deaths} node deaths, ${done.rows[0].n} runs done, dispatched per annealer ${dispatchedBy.join('/')}, max in flight ${maxInFlight}/${CAP}`,
  );
  expect(done.rows[0].n).toBeGreaterThan(NODES * 3);
  expect(dispatchedBy.every((n) => n > 0)).toBe(true);
  const notActive = await db.query(
    `select count(*)::int as n from inventory.noderoles where state <> 'active'`,
  );
  expect(notActive.rows[0].n).toBe(0);
}, 240_000);
