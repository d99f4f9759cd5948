import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pickPort, waitForExit } from '../infra/ports.js';
import { type PostgresHandle, startEmbeddedPostgres } from '../infra/postgres.js';
import {
  annealUnderWay,
  expectSurvived,
  missingNodes,
  startAnnealStack,
  writeLoop,
} from './helpers/anneal-load.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import type { Stack } from './helpers/stack.js';

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
  s = await startAnnealStack(t, { DATABASE_URL: pg.url });
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
  const { total } = await annealUnderWay(s, 'pgkill');
  const writes = writeLoop(s, 'pgkill');
  process.kill(pg.pid, 'SIGQUIT');
  expect(await waitForExit(pg.pid, 20_000)).toBe(true);
  // While the database is away, inventory's answers are refusals, never a made-up success.
  const during = await s.call('POST', '/nodes', { name: 'during.pgkill.crowbar.test' });
  expect(during.status).toBe(503);
  pg = await startPg();
  await expectSurvived({
    s,
    databaseUrl: pg.url,
    deployment: 'pgkill',
    total,
    writes,
    fault: 'PostgreSQL -m immediate and restart',
    acked: true,
  });
  expect(await missingNodes(pg.url, ['during.pgkill.crowbar.test'])).toEqual(['during.pgkill.crowbar.test']);
});
