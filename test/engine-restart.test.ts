import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { coreBarclampDir, testBarclampDir } from '../services/inventory/service.js';
import { Bus } from '../shared/bus/bus.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { op, until } from './helpers/inventory.js';
import { type ServiceProcess, spawnService } from './helpers/process.js';
import { type Stack, startStack } from './helpers/stack.js';

// Inventory killed with SIGKILL in the middle of an anneal and started again: the annealer keeps its
// claims (retrying their starts with the same token) and its results (retried until inventory answers),
// and everything reaches ACTIVE with nothing left in TRANSITION and no run left open.
let t: TestEnv;
let s: Stack;
let bus: Bus;
let db: pg.Client;
const inventories: ServiceProcess[] = [];
let inventoryEnv: Record<string, string>;

beforeAll(async () => {
  t = await createTestEnv();
  inventoryEnv = {
    ...t.env,
    CROWBAR_ADMIN_NODE: 'false',
    CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
  };
  inventories.push(await spawnService('inventory', inventoryEnv));
  s = await startStack(t, ['annealer', 'jig-runner'], {
    CROWBAR_ANNEAL_CAP: '1',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_ANNEAL_SWEEP_MS: '500',
    CROWBAR_CLAIM_TIMEOUT_SECONDS: '30',
  });
  bus = await Bus.connect({
    url: t.natsUrl,
    prefix: t.prefix,
    source: 'test',
    log: createLogger('t', { level: 'silent' }),
  });
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await bus?.close();
  await s?.stop();
  for (const p of inventories) await p.stop();
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
