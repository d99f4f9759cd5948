import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../infra/nats.js';
import { pickPort, waitForExit } from '../infra/ports.js';
import { annealUnderWay, expectSurvived, startAnnealStack, writeLoop } from './helpers/anneal-load.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import type { Stack } from './helpers/stack.js';

/**
 * Reliability plan T5 (issue 18): nats-server killed with -9 in the middle of an anneal of 220 noderoles
 * and started again on the same store. The services reconnect by themselves; every noderole ends ACTIVE
 * or ERROR with a reason, no destructive role runs twice, and no write answered 2xx is missing.
 */
let t: TestEnv;
let s: Stack;
let dir: string;
let port: number;
let nats: NatsServerHandle;

const startNats = () => startNatsServer({ dir: join(dir, 'nats'), port, log: () => undefined });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-natskill-'));
  port = await pickPort(4640);
  nats = await startNats();
  t = await createTestEnv();
  s = await startAnnealStack(t, { NATS_URL: nats.url });
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await nats?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('survives nats-server killed with -9 mid-anneal and restarted on its store', {
  timeout: 240_000,
}, async () => {
  const { total } = await annealUnderWay(s, 'natskill');
  const writes = writeLoop(s, 'natskill');
  process.kill(nats.pid, 'SIGKILL');
  expect(await waitForExit(nats.pid, 10_000)).toBe(true);
  // The gateway answers while NATS is away, and says it cannot reach what it needs.
  const during = await s.call('GET', '/nodes');
  expect(during.status).toBe(503);
  nats = await startNats();
  await expectSurvived({
    s,
    databaseUrl: t.databaseUrl,
    deployment: 'natskill',
    total,
    writes,
    fault: 'nats-server kill -9 and restart',
    acked: false,
  });
});
