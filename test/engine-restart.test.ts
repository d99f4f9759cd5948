import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { coreBarclampDir, testBarclampDir } from '../services/inventory/service.js';
import type { Bus } from '../shared/bus/bus.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { op, until } from './helpers/inventory.js';
import { type ServiceProcess, spawnService } from './helpers/process.js';
import { type Stack, startStack } from './helpers/stack.js';

// Inventory killed with SIGKILL in the middle of an anneal and started again: the annealer keeps its
// claims (retrying their starts with the same token) and its results (kept with the run and applied once
// inventory answers, even past the run's deadline), so nothing is lost or made up.
let t: TestEnv;
let s: Stack;
let bus: Bus;
let db: pg.Client;
const inventories: ServiceProcess[] = [];
const runners: ServiceProcess[] = [];
let inventoryEnv: Record<string, string>;

beforeAll(async () => {
  t = await createTestEnv();
  inventoryEnv = {
    ...t.env,
    CROWBAR_ADMIN_NODE: 'false',
    CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
  };
  inventories.push(await spawnService('inventory', inventoryEnv));
  runners.push(await spawnService('jig-runner', { ...t.env, CROWBAR_PROBE_AFTER_RUN: 'false' }));
  s = await startStack(t, ['annealer'], {
    CROWBAR_ANNEAL_CAP: '1',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_ANNEAL_SWEEP_MS: '500',
    CROWBAR_CLAIM_TIMEOUT_SECONDS: '30',
    // Deadlines at the role's timeout: the second test lets one pass while inventory is away.
    CROWBAR_RUN_GRACE_SECONDS: '0',
  });
  bus = await connectTestBus(t);
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await bus?.close();
  await s?.stop();
  for (const p of [...runners, ...inventories]) await p.stop();
  await t?.cleanup();
});

const count = async (where: string) =>
  (await db.query(`select count(*)::int as n from ${where}`)).rows[0].n as number;

it('survives an inventory crash mid-anneal: all ACTIVE, nothing in TRANSITION, no run left open', async () => {
  const nodes = 30;
  for (let i = 0; i < nodes; i++) {
    const n = await op(bus, 'node.create', { name: `r${i}.restart.example.com`, alive: true });
    await op(bus, 'noderole.create', { node: n.id, role: 'test-middle' });
    await op(bus, 'node.commit', { node: n.id });
  }
  const total = nodes * 2;
  // Cap 1 makes the anneal serial, so the crash lands while it is under way.
  const atKill = await until(
    'anneal under way',
    async () => {
      const n = await count(`inventory.noderoles where state = 'active'`);
      return n >= 3 ? n : 0;
    },
    30_000,
    10,
  );
  inventories[0]!.kill('SIGKILL');
  await inventories[0]!.exited;
  expect(atKill).toBeLessThan(total);
  // The annealer meets a missing inventory for a moment, then a new one.
  await new Promise((r) => setTimeout(r, 1500));
  inventories.push(await spawnService('inventory', inventoryEnv));
  await until(
    'all active',
    async () => (await count(`inventory.noderoles where state = 'active'`)) === total,
    60_000,
  );
  expect(await count(`inventory.noderoles where state <> 'active'`)).toBe(0);
  await until(
    'no run open',
    async () => (await count(`annealer.runs where state in ('claimed', 'running')`)) === 0,
  );
  expect(await count(`annealer.runs where state = 'failed'`)).toBe(0);
});

it('applies a result that came while inventory was away, even once the run is past its deadline', async () => {
  // Runs queue up while no runner is there; inventory dies after the start and before the result.
  await runners[0]!.stop();
  const n = await op(bus, 'node.create', { name: 'quick.restart.example.com', alive: true });
  const nr = await op(bus, 'noderole.create', { node: n.id, role: 'test-quick' });
  await op(bus, 'node.commit', { node: n.id });
  await until(
    'run dispatched',
    async () => (await count(`annealer.runs where noderole_id = ${nr.id} and state = 'running'`)) === 1,
  );
  const dead = inventories[inventories.length - 1]!;
  dead.kill('SIGKILL');
  await dead.exited;
  runners.push(await spawnService('jig-runner', { ...t.env, CROWBAR_PROBE_AFTER_RUN: 'false' }));
  await until(
    'result kept',
    async () => (await count(`annealer.runs where noderole_id = ${nr.id} and outcome is not null`)) === 1,
  );
  // test-quick times out after 2 s: the deadline passes while inventory is away.
  await until(
    'deadline passed',
    async () => (await count(`annealer.runs where noderole_id = ${nr.id} and deadline < now()`)) === 1,
  );
  inventories.push(await spawnService('inventory', inventoryEnv));
  const state = await until('noderole settled', async () => {
    const st = (await db.query('select state from inventory.noderoles where id = $1', [nr.id])).rows[0]
      .state as string;
    return st === 'active' || st === 'error' ? st : null;
  });
  expect(state).toBe('active');
  await until(
    'run closed',
    async () => (await count(`annealer.runs where noderole_id = ${nr.id} and state = 'done'`)) === 1,
  );
  expect(await count(`annealer.runs where noderole_id = ${nr.id} and state <> 'done'`)).toBe(0);
});
