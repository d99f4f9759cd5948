/**
 * `npm run bench -- anneal [--nodes 1000] [--roles 10] [--cap 200] [--time-limit 600]`
 *
 * Noderoles/s from "committed" to all ACTIVE for N nodes × a chain of R noop roles, with the real
 * inventory, annealer and two jig-runners over NATS and PostgreSQL, next to the limit L: a plain SQL
 * claim-and-complete loop (claim the lowest-cohort TODO row of a node with no running row under
 * FOR UPDATE SKIP LOCKED, complete it, promote its child) on the same database in the same run.
 * The one-run-per-node invariant is checked while ours runs. Ends with one JSON line.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { allServices } from '../infra/services.js';
import { coreBarclampDir, testBarclampDir } from '../services/inventory/service.js';
import { Bus } from '../shared/bus/bus.js';
import {
  type InventoryOp,
  type InventoryOpRequest,
  inventoryAnnealRpcs,
  inventoryOpRpcs,
} from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { type HostedService, hostService } from '../shared/service/host.js';
import { benchServices } from '../test/helpers/bench-env.js';
import { createTestEnv } from '../test/helpers/env.js';

const { values: o } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    roles: { type: 'string', default: '10' },
    cap: { type: 'string', default: '200' },
    'time-limit': { type: 'string', default: '600' },
    workers: { type: 'string', default: '8' },
  },
});
const NODES = Math.max(1, Math.min(10_000, Number(o.nodes)));
const ROLES = Math.max(1, Math.min(10, Number(o.roles)));
const CAP = Math.max(1, Math.min(10_000, Number(o.cap)));
const LIMIT_MS = Math.max(10, Number(o['time-limit'])) * 1000;
const WORKERS = Math.max(1, Math.min(64, Number(o.workers)));
const say = (l: string) => process.stdout.write(`${l}\n`);
const cleanups: (() => Promise<void>)[] = [];

/** A database and bus prefix of its own on this machine's PostgreSQL and NATS (or embedded ones). */
async function environment() {
  const services = await benchServices(say);
  cleanups.push(() => services.stop());
  const env = await createTestEnv(services);
  cleanups.push(() => env.cleanup());
  return { url: env.databaseUrl, nats: env.natsUrl, prefix: env.prefix };
}

/** The limit L: claim-and-complete in plain SQL, WORKERS connections, one running row per node. */
async function baseline(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`create schema bench; create table bench.nr (id serial primary key, node_id int not null, cohort int not null,
    parent_id int, state text not null);
    create unique index on bench.nr (node_id) where state = 'running'; create index on bench.nr (state, cohort, id);
    create index on bench.nr (parent_id)`);
  await c.query(
    `insert into bench.nr (node_id, cohort, parent_id, state)
    select n, r, null, case when r = 0 then 'todo' else 'blocked' end from generate_series(1, $1) n, generate_series(0, $2 - 1) r`,
    [NODES, ROLES],
  );
  await c.query(
    `update bench.nr c set parent_id = p.id from bench.nr p where p.node_id = c.node_id and p.cohort = c.cohort - 1`,
  );
  const total = NODES * ROLES;
  const started = Date.now();
  let done = 0;
  const worker = async () => {
    const w = new pg.Client({ connectionString: url });
    await w.connect();
    try {
      while (done < total && Date.now() - started < LIMIT_MS) {
        let id: number | undefined;
        try {
          const r = await w.query(`update bench.nr set state = 'running' where id = (
            select n.id from bench.nr n where n.state = 'todo'
              and not exists (select 1 from bench.nr x where x.node_id = n.node_id and x.state = 'running')
            order by n.cohort, n.id limit 1 for update skip locked) returning id`);
          id = r.rows[0]?.id;
        } catch {
          continue; // another worker claimed that node first
        }
        if (id === undefined) {
          if (done >= total) break;
          await new Promise((res) => setTimeout(res, 1));
          continue;
        }
        await w.query('begin');
        await w.query(`update bench.nr set state = 'active' where id = $1`, [id]);
        await w.query(`update bench.nr set state = 'todo' where parent_id = $1 and state = 'blocked'`, [id]);
        await w.query('commit');
        done++;
      }
    } finally {
      await w.end();
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const secs = (Date.now() - started) / 1000;
  await c.query('drop schema bench cascade');
  await c.end();
  return done / secs;
}

async function ours(env: {
  url: string;
  nats: string;
  prefix: string;
}): Promise<{ rate: number; maxPerNode: number; done: number }> {
  const base = {
    DATABASE_URL: env.url,
    NATS_URL: env.nats,
    CROWBAR_BUS_PREFIX: env.prefix,
    LOG_LEVEL: 'warn',
    CROWBAR_ADMIN_NODE: 'false',
    CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
    CROWBAR_ANNEAL_CAP: String(CAP),
    CROWBAR_ANNEAL_PASS_MS: '200',
    CROWBAR_DB_POOL_MAX: '20',
    CROWBAR_JIG_CONCURRENCY: String(CAP),
  };
  const hosted: HostedService[] = [];
  cleanups.push(async () => {
    for (const h of hosted.reverse()) await h.stop('bench done');
  });
  const def = (n: string) => allServices.find((d) => d.name === n)!;
  for (const n of ['inventory', 'annealer']) hosted.push(await hostService(def(n), { env: base }));
  for (const i of [1, 2])
    hosted.push(
      await hostService(def('jig-runner'), { env: { ...base, CROWBAR_INSTANCE: `jig-runner-bench-${i}` } }),
    );
  const bus = await Bus.connect({
    url: env.nats,
    prefix: env.prefix,
    source: 'bench',
    log: createLogger('bench', { level: 'warn' }),
  });
  cleanups.push(() => bus.close());
  const op = <K extends InventoryOp>(name: K, args: InventoryOpRequest<K>) =>
    bus.request(inventoryOpRpcs[name], args, { timeoutMs: 120_000 });

  say(`setting up ${NODES} nodes × ${ROLES} roles …`);
  await op('deployment.create', { name: 'bench' });
  const top = `bench-r${String(ROLES).padStart(2, '0')}`;
  let made = 0;
  const setup = async () => {
    while (made < NODES) {
      const i = made++;
      const n = await op('node.create', {
        name: `b${i}.bench.crowbar.test`,
        alive: true,
        deployment: 'bench',
      });
      await op('noderole.create', { node: n.id, role: top });
      await op('node.commit', { node: n.id });
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 8 }, setup));
  say(`setup took ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const db = new pg.Client({ connectionString: env.url });
  await db.connect();
  cleanups.push(() => db.end());
  const total = NODES * ROLES;
  const benchDeployment = (await db.query(`select id from inventory.deployments where name = 'bench'`))
    .rows[0].id;
  let maxPerNode = 0;
  const started = Date.now();
  await op('deployment.commit', { deployment: 'bench' });
  let done = 0;
  let lastReport = Date.now();
  let lastCount = 0;
  while (Date.now() - started < LIMIT_MS) {
    // Cheap enough not to load what it measures: the invariant (every 50 ms) reads only the rows in
    // TRANSITION; progress is counted every 250 ms.
    const r = await db.query(`select coalesce(max(c), 0)::int as per_node from (select count(*) as c
        from inventory.noderoles where state = 'transition' group by node_id) x`);
    maxPerNode = Math.max(maxPerNode, r.rows[0].per_node);
    if (Date.now() - lastCount >= 250) {
      lastCount = Date.now();
      const a = await db.query(
        `select count(*)::int as active from inventory.noderoles where state = 'active' and deployment_id = $1`,
        [benchDeployment],
      );
      done = a.rows[0].active;
    }
    if (Date.now() - lastReport > 5000) {
      say(`  ${done}/${total} active after ${((Date.now() - started) / 1000).toFixed(0)} s`);
      lastReport = Date.now();
    }
    if (done >= total) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const secs = (Date.now() - started) / 1000;
  const status = await bus.request(inventoryAnnealRpcs.status, {});
  // Where a run's time goes: waiting for dispatch, on the runner and back, and the gap before the node's
  // next run is claimed (scheduling latency).
  const lat = await db.query(`select
      avg(extract(epoch from dispatched_at - created_at)) * 1000 as claim_to_dispatch,
      avg(extract(epoch from finished_at - dispatched_at)) * 1000 as dispatch_to_finish,
      count(*)::int as runs from annealer.runs where state = 'done'`);
  const gap = await db.query(`select avg(extract(epoch from next.created_at - r.finished_at)) * 1000 as gap
      from annealer.runs r join lateral (select created_at from annealer.runs n where n.node_id = r.node_id and n.id > r.id
      order by n.id limit 1) next on true where r.state = 'done'`);
  const ms = (v: unknown) => `${Number(v ?? 0).toFixed(0)} ms`;
  say(
    `  per run (mean of ${lat.rows[0].runs}): claim→dispatch ${ms(lat.rows[0].claim_to_dispatch)}, dispatch→finished ${ms(lat.rows[0].dispatch_to_finish)}, finished→next claim on the node ${ms(gap.rows[0].gap)}`,
  );
  say(`ours: ${done}/${total} noderoles active in ${secs.toFixed(1)} s (anneal status ${status.status})`);
  // Stopped now, so the second baseline runs on a quiet machine like the first.
  for (const h of hosted.splice(0).reverse()) await h.stop('bench done');
  return { rate: done / secs, maxPerNode, done };
}

try {
  const env = await environment();
  say(
    `anneal bench: ${NODES} nodes × ${ROLES} roles, cap ${CAP}, 2 jig-runners; baseline ${WORKERS} SQL workers`,
  );
  // The limit is measured before and after ours and averaged: this machine's speed drifts by ±30%
  // from minute to minute, and one sample on either side of ours is fairer than one before it.
  const b1 = await baseline(env.url);
  say(`baseline (SQL claim-and-complete), before: ${b1.toFixed(0)} noderoles/s`);
  const r = await ours(env);
  const b2 = await baseline(env.url);
  say(`baseline (SQL claim-and-complete), after: ${b2.toFixed(0)} noderoles/s`);
  const b = (b1 + b2) / 2;
  say(
    `ours: ${r.rate.toFixed(1)} noderoles/s; max runs in TRANSITION on one node at any sample: ${r.maxPerNode}`,
  );
  if (r.maxPerNode > 1) say('INVARIANT BROKEN: a node had two noderoles in TRANSITION');
  const ratio = r.rate / b;
  say(
    JSON.stringify({
      bench: 'anneal',
      ours: Number(r.rate.toFixed(2)),
      baseline: Number(b.toFixed(2)),
      ratio: Number(ratio.toFixed(4)),
      max_per_node: r.maxPerNode,
    }),
  );
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
process.exit(0);
