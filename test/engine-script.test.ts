import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { annealerMessages } from '../shared/catalogue/index.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';

// The script jig against a real sshd on loopback: data flows from a script to its child's attrs.json,
// a failing script ripples as the reference says, and a changed host key stops everything.
let t: TestEnv;
let s: Stack;
let sshd: TestSshd;
let bus: Bus;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-script-test-`);
  const keys = generateKeyPair('crowbar-test');
  writeFileSync(`${dir}/cluster_key`, keys.privateKey, { mode: 0o600 });
  sshd = await startSshd({ authorizedKeys: [keys.publicKey] });
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_SSH_KEY: `${dir}/cluster_key`,
    CROWBAR_PROBE_AFTER_RUN: 'false',
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  bus = await connectTestBus(t);
});
afterAll(async () => {
  await bus?.close();
  await s?.stop();
  await t?.cleanup();
  await sshd?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function node(name: string) {
  const r = await s.call('POST', '/nodes', {
    name,
    alive: true,
    sshHostKey: sshd.hostKey,
    hint: { ssh: { host: sshd.host, port: sshd.port } },
  });
  expect(r.status).toBe(201);
  return r.body.id as number;
}
const nr = async (nodeId: number, role: string) =>
  (await s.call('GET', `/nodes/${nodeId}/node_roles/${role}`)).body;
const state = async (nodeId: number, role: string) => (await nr(nodeId, role)).state as string;

describe('script jig', () => {
  let n1: number;

  it('runs scripts over SSH and passes what a script writes to its child', async () => {
    n1 = await node('script1.lab.crowbar.test');
    expect((await s.call('POST', '/node_roles', { node: n1, role: 'test-script' })).status).toBe(201);
    await s.call('PUT', `/nodes/${n1}/commit`);
    await until('test-script active', async () => (await state(n1, 'test-script')) === 'active', 30_000);
    const writer = await nr(n1, 'test-writer');
    expect(writer.wall.test).toEqual({
      written: `hello from ${hostname()}`,
      count: 42,
      flag: true,
      word: 'face',
    });
    expect(writer.runlog).toContain('== 10-write.sh');
    const child = await nr(n1, 'test-script');
    expect(child.wall.test.seen).toBe(`hello from ${hostname()}`);
  });

  it('a failing script: ERROR, every descendant BLOCKED with on_blocked, nothing else on the node runs; retry after fixing the data', async () => {
    const n2 = await node('script2.lab.crowbar.test');
    await s.call('POST', '/node_roles', { node: n2, role: 'test-last' });
    const fail = await nr(n2, 'test-fail');
    await s.call('PUT', `/node_roles/${fail.id}/attribs/test-should_fail`, { value: false });
    await s.call('PUT', `/nodes/${n2}/commit`);
    await until('graph active', async () => (await state(n2, 'test-last')) === 'active', 30_000);

    const blocked: number[] = [];
    const sub = bus.nc.subscribe(bus.subject('evt.noderole.blocked.v1'), {
      callback: (_e, m) => {
        blocked.push(JSON.parse(new TextDecoder().decode(m.data)).data.noderole.id);
      },
    });
    const after = await nr(n2, 'test-after-fail');
    const last = await nr(n2, 'test-last');
    // New data for an ACTIVE noderole waits in its proposed data (reference §1.6); propose and commit
    // it, and it runs again with it — and now fails.
    expect((await s.call('PUT', `/node_roles/${fail.id}/propose`)).status).toBe(200);
    expect(
      (await s.call('PUT', `/node_roles/${fail.id}/attribs/test-should_fail`, { value: true })).status,
    ).toBe(200);
    expect((await s.call('PUT', `/node_roles/${fail.id}/commit`)).status).toBe(200);
    await until('test-fail in error', async () => (await state(n2, 'test-fail')) === 'error', 30_000);
    expect((await nr(n2, 'test-fail')).runlog).toMatch(
      /failing because test\/should_fail is true[\s\S]*exit code 7/,
    );
    expect(await state(n2, 'test-after-fail')).toBe('blocked');
    expect(await state(n2, 'test-last')).toBe('blocked');
    await until(
      'on_blocked for both descendants',
      () => blocked.includes(after.id) && blocked.includes(last.id),
      5000,
    );
    expect((await s.call('GET', '/anneal')).status).toBe(409);

    // Something new on the same node does not run while the node has an ERROR.
    const marker = `${dir}/writer-marker`;
    const w = await s.call('POST', '/node_roles', { node: n2, role: 'test-writer' });
    await s.call('PUT', `/node_roles/${w.body.id}/attribs/test-marker`, { value: marker });
    await s.call('PUT', `/node_roles/${w.body.id}/commit`);
    const runs = await bus.request(annealerMessages.runs, {
      active: true,
    });
    expect(runs.runs.filter((r) => r.nodeId === n2)).toEqual([]);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await state(n2, 'test-writer')).toBe('todo');
    expect(existsSync(marker)).toBe(false);

    // Fix the data (propose, write, commit) and it runs again: everything reaches ACTIVE.
    expect((await s.call('PUT', `/node_roles/${fail.id}/propose`)).status).toBe(200);
    await s.call('PUT', `/node_roles/${fail.id}/attribs/test-should_fail`, { value: false });
    expect((await s.call('PUT', `/node_roles/${fail.id}/commit`)).status).toBe(200);
    await until('all active again', async () => (await s.call('GET', '/anneal')).status === 200, 30_000);
    for (const role of ['test-fail', 'test-after-fail', 'test-last', 'test-writer'])
      expect(await state(n2, role)).toBe('active');
    expect(readFileSync(marker, 'utf8')).toBe('test-writer ran\n');
    sub.unsubscribe();
  });

  it('a node whose sshd is not up yet: the run keeps trying to log in, and runs once it can', async () => {
    const n3 = await node('script3.lab.crowbar.test');
    const marker = `${dir}/late-marker`;
    const w = await s.call('POST', '/node_roles', { node: n3, role: 'test-writer' });
    await s.call('PUT', `/node_roles/${w.body.id}/attribs/test-marker`, { value: marker });
    // A node just discovered may still be moving to its reserved address, or starting sshd: here its
    // port refuses when the run begins.
    await sshd.stop();
    try {
      await s.call('PUT', `/nodes/${n3}/commit`);
      await until(
        'test-writer running',
        async () => (await state(n3, 'test-writer')) === 'transition',
        30_000,
      );
      expect(existsSync(marker)).toBe(false);
    } finally {
      await sshd.start();
    }
    await until('test-writer active', async () => (await state(n3, 'test-writer')) === 'active', 30_000);
    expect(readFileSync(marker, 'utf8')).toBe('test-writer ran\n');
  });

  it('a changed host key fails the run with a clear runlog and no script runs', async () => {
    const marker = `${dir}/hostkey-marker`;
    const writer = await nr(n1, 'test-writer');
    await sshd.rotateHostKey();
    // New data, committed, makes the noderole run again — against the new key.
    await s.call('PUT', `/node_roles/${writer.id}/propose`);
    await s.call('PUT', `/node_roles/${writer.id}/attribs/test-marker`, { value: marker });
    await s.call('PUT', `/node_roles/${writer.id}/commit`);
    await until('test-writer in error', async () => (await state(n1, 'test-writer')) === 'error', 30_000);
    const after = await nr(n1, 'test-writer');
    expect(after.runlog).toMatch(/host key mismatch/);
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(`${dir}/cluster_key`, 'utf8')).toContain('PRIVATE KEY');
    expect(after.runlog).not.toContain('PRIVATE KEY');
  });
});
