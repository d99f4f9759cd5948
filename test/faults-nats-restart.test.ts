import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../infra/nats.js';
import { pickPort, waitForExit } from '../infra/ports.js';
import { annealOutcome, missingNodes, prepareAnneal, reportFault, writeLoop } from './helpers/anneal-load.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

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
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    NATS_URL: nats.url,
    CROWBAR_ANNEAL_CAP: '4',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_ANNEAL_SWEEP_MS: '500',
    CROWBAR_PROBE_AFTER_RUN: 'false',
  });
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
  const { total } = await prepareAnneal(s, 'natskill', 20);
  expect((await s.call('PUT', '/deployments/natskill/commit')).status).toBe(200);
  await until(
    'anneal under way',
    async () => {
      const nrs = (await s.call('GET', '/deployments/natskill/node_roles')).body.noderoles as {
        state: string;
      }[];
      return nrs.filter((n) => n.state === 'active').length >= 20;
    },
    60_000,
    25,
  );
  const writes = writeLoop(s, 'natskill');
  process.kill(nats.pid, 'SIGKILL');
  expect(await waitForExit(nats.pid, 10_000)).toBe(true);
  // The gateway answers while NATS is away, and says it cannot reach what it needs.
  const during = await s.call('GET', '/nodes');
  expect(during.status).toBe(503);
  nats = await startNats();
  const outcome = await annealOutcome(t.databaseUrl, 'natskill', 180_000);
  await writes.stop();
  const missing = await missingNodes(t.databaseUrl, writes.acked);
  reportFault('nats-server kill -9 and restart', outcome, {
    attempts: writes.attempts(),
    acked: writes.acked.length,
    missing: missing.length,
  });
  expect(outcome.states.active ?? 0, JSON.stringify(outcome.states)).toBe(
    total - (outcome.states.error ?? 0),
  );
  expect(outcome.errorsWithoutReason).toBe(0);
  expect(outcome.destructiveTwice).toBe(0);
  expect(writes.attempts()).toBeGreaterThan(0);
  expect(missing).toEqual([]);
  // And the stack works again end to end.
  expect((await s.call('POST', '/nodes', { name: 'after.natskill.crowbar.test' })).status).toBe(201);
});
