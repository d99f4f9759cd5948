import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pickPort, waitForExit } from '../infra/ports.js';
import { type PostgresHandle, startEmbeddedPostgres } from '../infra/postgres.js';
import { annealOutcome, missingNodes, prepareAnneal, reportFault, writeLoop } from './helpers/anneal-load.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * Reliability plan T6 (issue 18): PostgreSQL stopped the way `pg_ctl stop -m immediate` does (SIGQUIT to
 * the postmaster: no checkpoint, every connection cut) in the middle of an anneal of 220 noderoles, then
 * started again on its data. The services reconnect by themselves; every noderole ends ACTIVE or ERROR
 * with a reason, no destructive role runs twice, and no write answered 2xx is missing afterwards.
 */
let t: TestEnv;
let s: Stack;
let dir: string;
let port: number;
let pg: PostgresHandle;
const password = 'fault-test-password-0123456789';

const startPg = () =>
  startEmbeddedPostgres({
    dir: join(dir, 'postgres'),
    port,
    database: 'crowbar',
    persistent: true,
    password,
    log: () => undefined,
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-pgkill-'));
  // Embedded PostgreSQL runs as the postgres user when we are root; it must reach its data dir.
  chmodSync(dir, 0o755);
  port = await pickPort(5470);
  pg = await startPg();
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    DATABASE_URL: pg.url,
    CROWBAR_ANNEAL_CAP: '4',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_ANNEAL_SWEEP_MS: '500',
    CROWBAR_PROBE_AFTER_RUN: 'false',
  });
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await pg?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('survives PostgreSQL stopped -m immediate mid-anneal and started again', {
  timeout: 240_000,
}, async () => {
  const { total } = await prepareAnneal(s, 'pgkill', 20);
  expect((await s.call('PUT', '/deployments/pgkill/commit')).status).toBe(200);
  await until(
    'anneal under way',
    async () => {
      const nrs = (await s.call('GET', '/deployments/pgkill/node_roles')).body.noderoles as {
        state: string;
      }[];
      return nrs.filter((n) => n.state === 'active').length >= 20;
    },
    60_000,
    25,
  );
  const writes = writeLoop(s, 'pgkill');
  process.kill(pg.pid, 'SIGQUIT');
  expect(await waitForExit(pg.pid, 20_000)).toBe(true);
  // While the database is away, inventory's answers are refusals, never a made-up success.
  const during = await s.call('POST', '/nodes', { name: 'during.pgkill.crowbar.test' });
  expect(during.status).toBe(503);
  pg = await startPg();
  const outcome = await annealOutcome(pg.url, 'pgkill', 180_000);
  await writes.stop();
  const missing = await missingNodes(pg.url, writes.acked);
  reportFault('PostgreSQL -m immediate and restart', outcome, {
    attempts: writes.attempts(),
    acked: writes.acked.length,
    missing: missing.length,
  });
  expect(outcome.states.active ?? 0, JSON.stringify(outcome.states)).toBe(
    total - (outcome.states.error ?? 0),
  );
  expect(outcome.errorsWithoutReason).toBe(0);
  expect(outcome.destructiveTwice).toBe(0);
  expect(writes.acked.length).toBeGreaterThan(0);
  expect(missing).toEqual([]);
  expect(await missingNodes(pg.url, ['during.pgkill.crowbar.test'])).toEqual(['during.pgkill.crowbar.test']);
  expect((await s.call('POST', '/nodes', { name: 'after.pgkill.crowbar.test' })).status).toBe(201);
});
