import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/bus.js';
import { alivenessMessages, ipamMessages, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { ensureFping, startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';

// The whole loop of reference §4 with every piece real: sshd in a namespace, the probe deciding,
// inventory rippling the noderoles, the annealer and jig-runner re-annealing when the node is back.
const probe = { interval: 500, failures: 3, icmpTimeout: 300, sshTimeout: 3000 };
const windowMs = probe.failures * (probe.interval + probe.icmpTimeout + probe.sshTimeout) + 2000;

const cluster = generateKeyPair('cluster');
let t: TestEnv;
let s: Stack;
let bus: Bus;
let lab: Lab;
let net: NsNode;
let sshd: TestSshd;
let keyDir: string;
let id: number;
const activated: number[] = [];

type Noderole = { id: number; role: string; state: string; runCount: number };
const roles = async (): Promise<Record<string, Noderole>> =>
  Object.fromEntries(
    ((await s.call('GET', `/nodes/${id}/node_roles`)).body.noderoles as Noderole[]).map((n) => [n.role, n]),
  );
const node = async () =>
  (await s.call('GET', `/nodes/${id}`)).body as { alive: boolean; aliveReason: string };
const settled = () =>
  until('anneal finished', async () => (await s.call('GET', '/anneal')).status === 200, 30_000, 100);
const chain = ['test-base', 'test-middle', 'test-top'];

beforeAll(async () => {
  ensureFping();
  t = await createTestEnv();
  keyDir = mkdtempSync(join(tmpdir(), 'crowbar-key-'));
  writeFileSync(join(keyDir, 'cluster'), cluster.privateKey, { mode: 0o600 });
  lab = createLab();
  net = lab.addNode();
  sshd = await startSshd({ authorizedKeys: [cluster.publicKey], netns: net.ns, host: net.ipv4 });
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'aliveness-probe', 'gateway'], {
    LOG_LEVEL: process.env.TEST_LOG ?? 'silent',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_SSH_KEY: join(keyDir, 'cluster'),
    CROWBAR_PROBE_INTERVAL_MS: String(probe.interval),
    CROWBAR_PROBE_FAILURES: String(probe.failures),
    CROWBAR_PROBE_ICMP_TIMEOUT_MS: String(probe.icmpTimeout),
    CROWBAR_PROBE_ICMP_RETRIES: '0',
    CROWBAR_PROBE_SSH_TIMEOUT_MS: String(probe.sshTimeout),
  });
  bus = await Bus.connect({
    url: t.natsUrl,
    prefix: t.prefix,
    source: 'aliveness-engine-test',
    log: createLogger('t', { level: 'silent' }),
    streams,
  });
  bus.nc.subscribe(bus.subject('evt.noderole.active.>'), {
    callback: (_e, m) => {
      const d = JSON.parse(new TextDecoder().decode(m.data)).data as { noderole?: { id: number } };
      if (d.noderole) activated.push(d.noderole.id);
    },
  });
});

afterAll(async () => {
  await bus?.close();
  await s?.stop();
  await sshd?.cleanup();
  lab?.cleanup();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  await t?.cleanup();
});

describe('probe → inventory → annealer', () => {
  it('a registered node with a pinned key is found alive and anneals to ACTIVE', async () => {
    const created = await s.call('POST', '/nodes', {
      name: 'probed.lab.crowbar.test',
      sshHostKey: sshd.hostKey,
    });
    expect(created.status).toBe(201);
    id = created.body.id;
    expect(created.body.alive).toBe(false);
    await bus.publish(ipamMessages.allocationCreated, {
      allocation: {
        id: 1,
        nodeId: id,
        node: 'probed.lab.crowbar.test',
        networkId: 1,
        network: 'admin',
        category: 'admin',
        range: 'host',
        address: `${net.ipv4}/30`,
        family: 'ipv4',
      },
    });
    await s.call('POST', '/node_roles', { node: id, role: 'test-top' });
    await s.call('PUT', `/nodes/${id}/commit`);
    await until('probe finds the node alive', async () => (await node()).alive, windowMs + 5000, 100);
    expect((await node()).aliveReason).toBe('probe: ok');
    await settled();
    for (const r of chain) expect((await roles())[r]?.state).toBe('active');
  });

  it('sshd stopped: dead within the window with its reason, lowest cohort TODO and the rest BLOCKED; back → ACTIVE in order', async () => {
    await sshd.stop();
    const t0 = Date.now();
    await until('node dead', async () => !(await node()).alive, windowMs + 5000, 100);
    expect(Date.now() - t0).toBeLessThanOrEqual(windowMs);
    expect((await node()).aliveReason).toBe('probe: connection refused');
    const r = await roles();
    expect([r['test-base']?.state, r['test-middle']?.state, r['test-top']?.state]).toEqual([
      'todo',
      'blocked',
      'blocked',
    ]);
    // Dead: nothing runs on it.
    await new Promise((res) => setTimeout(res, 1500));
    expect((await roles())['test-base']?.runCount).toBe(1);

    const from = activated.length;
    await sshd.start();
    await until('node alive', async () => (await node()).alive, windowMs + 5000, 100);
    await settled();
    const back = await roles();
    for (const name of chain) expect(back[name]).toMatchObject({ state: 'active', runCount: 2 });
    const order = activated.slice(from);
    expect(chain.map((name) => order.indexOf(back[name]!.id))).toEqual([0, 1, 2]);
  });

  it('a changed host key: dead with "host key mismatch" and no jig runs there until the key is re-pinned', async () => {
    const fresh = await sshd.rotateHostKey();
    await until('node dead', async () => !(await node()).alive, windowMs + 5000, 100);
    expect((await node()).aliveReason).toBe('probe: host key mismatch');
    const h = await bus.request(alivenessMessages.nodeHealth, { nodeId: id, limit: 5 });
    expect(h).toMatchObject({ verdict: 'dead', reason: 'host key mismatch' });
    await new Promise((res) => setTimeout(res, 2000));
    const r = await roles();
    expect(r['test-base']).toMatchObject({ state: 'todo', runCount: 2 });
    expect((await node()).alive).toBe(false);

    const pinned = await s.call('PUT', `/nodes/${id}`, { sshHostKey: fresh });
    expect(pinned.status).toBe(200);
    await until('node alive', async () => (await node()).alive, windowMs + 5000, 100);
    await settled();
    for (const name of chain) expect((await roles())[name]).toMatchObject({ state: 'active', runCount: 3 });
  });
});
