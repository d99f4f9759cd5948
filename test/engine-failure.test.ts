import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type ServiceProcess, spawnService } from './helpers/process.js';
import { startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';

// A jig runner killed with SIGKILL mid-run: the job goes to another runner; the noderole becomes ACTIVE
// exactly once, nothing stays in TRANSITION, and a destructive script never runs twice.
let t: TestEnv;
let s: Stack;
let sshd: TestSshd;
let bus: Bus;
let db: pg.Client;
let dir: string;
const runners: ServiceProcess[] = [];
let runnerEnv: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-failure-test-`);
  const keys = generateKeyPair('crowbar-test');
  writeFileSync(`${dir}/cluster_key`, keys.privateKey, { mode: 0o600 });
  sshd = await startSshd({ authorizedKeys: [keys.publicKey] });
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'gateway'], { CROWBAR_ANNEAL_PASS_MS: '100' });
  runnerEnv = {
    ...t.env,
    CROWBAR_SSH_KEY: `${dir}/cluster_key`,
    CROWBAR_PROBE_AFTER_RUN: 'false',
    CROWBAR_JIG_ACK_WAIT_MS: '2000',
  };
  bus = await connectTestBus(t);
  db = new pg.Client({ connectionString: t.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  for (const r of runners) await r.stop();
  await db?.end();
  await bus?.close();
  await s?.stop();
  await t?.cleanup();
  await sshd?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const lines = (f: string) =>
  existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).length : 0;

async function nodeWith(name: string, role: string, attribs: Record<string, unknown>) {
  const n = await s.call('POST', '/nodes', {
    name,
    alive: true,
    sshHostKey: sshd.hostKey,
    hint: { ssh: { host: sshd.host, port: sshd.port } },
  });
  const nr = await s.call('POST', '/node_roles', { node: n.body.id, role });
  for (const [a, value] of Object.entries(attribs)) {
    expect((await s.call('PUT', `/node_roles/${nr.body.id}/attribs/${a}`, { value })).status).toBe(200);
  }
  return { node: n.body.id as number, noderole: nr.body.id as number };
}

describe('kill -9 of a jig runner mid-run', () => {
  it('re-runs an ordinary role on another runner: ACTIVE exactly once, nothing left in TRANSITION', async () => {
    runners.push(await spawnService('jig-runner', runnerEnv));
    const actives: number[] = [];
    const sub = bus.nc.subscribe(bus.subject('evt.noderole.active.v1'), {
      callback: (_e, m) => {
        actives.push(JSON.parse(new TextDecoder().decode(m.data)).data.noderole.id);
      },
    });
    const marker = `${dir}/ordinary`;
    const { node, noderole } = await nodeWith('victim1.lab.crowbar.test', 'test-writer', {
      'test-marker': marker,
      'test-sleep': 4,
    });
    await s.call('PUT', `/nodes/${node}/commit`);
    await until('script started', () => lines(marker) === 1, 30_000);
    runners[0]!.kill('SIGKILL');
    await runners[0]!.exited;
    runners.push(await spawnService('jig-runner', runnerEnv));
    await until(
      'noderole active',
      async () => (await s.call('GET', `/node_roles/${noderole}`)).body.state === 'active',
      60_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(actives.filter((id) => id === noderole)).toHaveLength(1);
    expect(lines(marker)).toBe(2); // ordinary roles are re-run from the start by the new runner
    const stuck = await db.query(
      `select count(*)::int as n from inventory.noderoles where state = 'transition'`,
    );
    expect(stuck.rows[0].n).toBe(0);
    sub.unsubscribe();
  }, 180_000);

  it('never runs a destructive script twice: the interrupted run fails with a clear runlog', async () => {
    const marker = `${dir}/destructive`;
    const { node, noderole } = await nodeWith('victim2.lab.crowbar.test', 'test-destructive', {
      'test-destructive_marker': marker,
      'test-destructive_sleep': 4,
    });
    await s.call('PUT', `/nodes/${node}/commit`);
    await until('script started', () => lines(marker) === 1, 30_000);
    runners[1]!.kill('SIGKILL');
    await runners[1]!.exited;
    runners.push(await spawnService('jig-runner', runnerEnv));
    await until(
      'noderole failed',
      async () => (await s.call('GET', `/node_roles/${noderole}`)).body.state === 'error',
      60_000,
    );
    const nr = (await s.call('GET', `/node_roles/${noderole}`)).body;
    expect(nr.runlog).toMatch(/destructive role was interrupted mid-run/);
    await new Promise((r) => setTimeout(r, 3000));
    expect(lines(marker)).toBe(1);
    const stuck = await db.query(
      `select count(*)::int as n from inventory.noderoles where state = 'transition'`,
    );
    expect(stuck.rows[0].n).toBe(0);
  }, 180_000);
});

describe('a node that dies while a destructive role runs on it (DESIGN §4 #7)', () => {
  it('the run still counts when it ends: back alive, the role is skipped, never run twice', async () => {
    runners.push(await spawnService('jig-runner', runnerEnv));
    const marker = `${dir}/destructive-dies`;
    const { node, noderole } = await nodeWith('victim3.lab.crowbar.test', 'test-destructive', {
      'test-destructive_marker': marker,
      'test-destructive_sleep': 3,
    });
    await s.call('PUT', `/nodes/${node}/commit`);
    await until('script started', () => lines(marker) === 1, 30_000);
    // The node goes away mid-run (an install reboots it): its run is in flight and stays so.
    expect((await s.call('PUT', `/nodes/${node}`, { alive: false })).status).toBe(200);
    expect((await s.call('GET', `/node_roles/${noderole}`)).body.state).toBe('transition');
    const settled = await until(
      'the run ended and counted',
      async () => {
        const nr = (await s.call('GET', `/node_roles/${noderole}`)).body;
        return nr.state !== 'transition' ? nr : null;
      },
      60_000,
    );
    expect(settled).toMatchObject({ runCount: 1 });
    expect(['todo', 'blocked']).toContain(settled.state);
    expect((await s.call('PUT', `/nodes/${node}`, { alive: true })).status).toBe(200);
    const done = await until(
      'the role ACTIVE again, its jig skipped',
      async () => {
        const nr = (await s.call('GET', `/node_roles/${noderole}`)).body;
        return nr.state === 'active' && nr.runCount > 1 ? nr : null;
      },
      60_000,
    );
    expect(done.runlog).toMatch(/skip/);
    expect(lines(marker)).toBe(1);
  }, 120_000);
});
