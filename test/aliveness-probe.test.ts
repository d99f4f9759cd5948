import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alivenessProbeService } from '../services/aliveness-probe/service.js';
import { Bus, encodeEnvelope } from '../shared/bus/bus.js';
import { streamName } from '../shared/bus/streams.js';
import {
  alivenessMessages,
  type InventoryOpRequest,
  inventoryRpcs,
  ipamMessages,
  streams,
} from '../shared/catalogue/index.js';
import { NotFoundError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { hostService } from '../shared/service/host.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { op } from './helpers/inventory.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { ensureFping, startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

/** Probe settings for this file; the detection window follows from them. */
const probe = { interval: 500, failures: 3, icmpTimeout: 300, sshTimeout: 3000 };
const windowMs = probe.failures * (probe.interval + probe.icmpTimeout + probe.sshTimeout) + 2000;

const cluster = generateKeyPair('cluster');
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let lab: Lab;
let keyDir: string;

interface LabNode {
  id: number;
  name: string;
  credential: string;
  net: NsNode;
  sshd: TestSshd;
}
const nodes: LabNode[] = [];
const historyKeep = 10;
/** probe.verdict_changed events as an external tool sees them. */
const verdicts: { nodeId: number; to: string; reason: string; reported: boolean }[] = [];

async function until<T>(what: string, f: () => Promise<T>, ms = windowMs + 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const getNode = (id: number) => bus.request(inventoryRpcs.getNode, { node: id });
const health = (id: number) => bus.request(alivenessMessages.nodeHealth, { nodeId: id, limit: 20 });
const update = (id: number, args: Omit<InventoryOpRequest<'node.update'>, 'node'>) =>
  op(bus, 'node.update', { node: id, ...args });

async function addLabNode(i: number, allocationId: number): Promise<LabNode> {
  const net = lab.addNode();
  const sshd = await startSshd({ authorizedKeys: [cluster.publicKey], netns: net.ns, host: net.ipv4 });
  const name = `n${i}.lab.example.com`;
  const created = await op(bus, 'node.create', {
    name,
    sshHostKey: sshd.hostKey,
    available: true,
    alive: false,
  });
  await bus.publish(ipamMessages.allocationCreated, {
    allocation: {
      id: allocationId,
      nodeId: created.id,
      node: name,
      networkId: 1,
      network: 'admin',
      category: 'admin',
      range: 'host',
      address: `${net.ipv4}/30`,
      family: 'ipv4',
    },
  });
  return { id: created.id, name, credential: created.credential, net, sshd };
}

beforeAll(async () => {
  ensureFping();
  t = await createTestEnv();
  keyDir = mkdtempSync(join(tmpdir(), 'crowbar-key-'));
  writeFileSync(join(keyDir, 'cluster_ed25519'), cluster.privateKey, { mode: 0o600 });
  lab = createLab();
  stack = await startStack(t, ['inventory', 'aliveness-probe', 'gateway'], {
    LOG_LEVEL: process.env.TEST_LOG ?? 'silent',
    CROWBAR_SSH_KEY: join(keyDir, 'cluster_ed25519'),
    CROWBAR_PROBE_INTERVAL_MS: String(probe.interval),
    CROWBAR_PROBE_FAILURES: String(probe.failures),
    CROWBAR_PROBE_ICMP_TIMEOUT_MS: String(probe.icmpTimeout),
    CROWBAR_PROBE_ICMP_RETRIES: '0',
    CROWBAR_PROBE_SSH_TIMEOUT_MS: String(probe.sshTimeout),
    CROWBAR_PROBE_HISTORY: String(historyKeep),
    // Small pools: the sweep must never need two connections per node at once (it once deadlocked).
    CROWBAR_DB_POOL_MAX: '3',
  });
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'aliveness-test', log, streams });
  bus.nc.subscribe(bus.subject(`${alivenessMessages.verdictChanged.subject}`), {
    callback: (_e, m) => {
      verdicts.push(JSON.parse(new TextDecoder().decode(m.data)).data);
    },
  });
  nodes.push(await addLabNode(1, 101), await addLabNode(2, 102));
});

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  for (const n of nodes) await n.sshd.cleanup();
  lab?.cleanup();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  await t?.cleanup();
});

describe('aliveness-probe with real inventory, sshd in namespaces', () => {
  it('marks a reachable node with a pinned host key alive', async () => {
    for (const n of nodes) await until(`${n.name} alive`, async () => (await getNode(n.id)).alive);
    const h = await health(nodes[0]!.id);
    expect(h).toMatchObject({ verdict: 'alive', reason: 'ok', reporting: true, hostKeyPinned: true });
    expect(h.addresses).toEqual([nodes[0]!.net.ipv4]);
    expect(h.history[0]).toMatchObject({ ok: true, stage: 'none', address: nodes[0]!.net.ipv4 });
  });

  it('stopping sshd makes the node dead within the window with its reason; starting it makes it alive', async () => {
    const n = nodes[0]!;
    await n.sshd.stop();
    const t0 = Date.now();
    await until('node dead', async () => !(await getNode(n.id)).alive);
    const took = Date.now() - t0;
    expect(took).toBeLessThanOrEqual(windowMs);
    // Hysteresis: not on the first failed probe.
    expect(took).toBeGreaterThanOrEqual((probe.failures - 1) * probe.interval);
    const h = await health(n.id);
    expect(h).toMatchObject({ verdict: 'dead', reason: 'connection refused' });
    expect(h.consecutiveFailures).toBeGreaterThanOrEqual(probe.failures);
    await until('verdict event', async () =>
      verdicts.some(
        (v) => v.nodeId === n.id && v.to === 'dead' && v.reason === 'connection refused' && v.reported,
      ),
    );
    expect((await getNode(nodes[1]!.id)).alive).toBe(true);

    await n.sshd.start();
    await until('node alive again', async () => (await getNode(n.id)).alive);
    expect((await health(n.id)).verdict).toBe('alive');
  });

  it('a changed host key makes the node dead with "host key mismatch"; re-pinning revives it', async () => {
    const n = nodes[1]!;
    const fresh = await n.sshd.rotateHostKey();
    await until('node dead', async () => !(await getNode(n.id)).alive);
    expect(await health(n.id)).toMatchObject({ verdict: 'dead', reason: 'host key mismatch' });
    const r = await bus.request(alivenessMessages.probe, { nodeId: n.id });
    expect(r).toMatchObject({ alive: false, stage: 'ssh', reason: 'host key mismatch' });

    await update(n.id, { sshHostKey: fresh });
    await until('node alive with the new pinned key', async () => (await getNode(n.id)).alive);
  });

  it('probes an unavailable node for health but never toggles its aliveness', async () => {
    const n = nodes[0]!;
    await update(n.id, { available: false });
    await until('projection sees unavailable', async () => !(await health(n.id)).reporting);
    await n.sshd.stop();
    try {
      await until('verdict dead', async () => (await health(n.id)).verdict === 'dead');
      await until('unreported verdict event', async () =>
        verdicts.some((v) => v.nodeId === n.id && v.to === 'dead' && !v.reported),
      );
      // Two more sweeps: still alive in inventory.
      await new Promise((r) => setTimeout(r, 2 * probe.interval));
      expect((await getNode(n.id)).alive).toBe(true);
    } finally {
      await n.sshd.start();
    }
    await until('verdict alive', async () => (await health(n.id)).verdict === 'alive');
    await update(n.id, { available: true });
    expect((await getNode(n.id)).alive).toBe(true);
  });

  it('answers an on-demand probe (the jig-runner asks after each run)', async () => {
    const n = nodes[0]!;
    const r = await bus.request(alivenessMessages.probe, { nodeId: n.id });
    expect(r).toMatchObject({ nodeId: n.id, alive: true, reason: 'ok', stage: 'none', address: n.net.ipv4 });
    const h = await health(n.id);
    expect(h.history.some((x) => x.trigger === 'on-demand')).toBe(true);
    // Requests arriving together share one probe batch; each still gets its own node's answer.
    const both = await Promise.all(nodes.map((x) => bus.request(alivenessMessages.probe, { nodeId: x.id })));
    expect(both.map((r) => [r.nodeId, r.alive, r.address])).toEqual(
      nodes.map((x) => [x.id, true, x.net.ipv4]),
    );
    await expect(bus.request(alivenessMessages.probe, { nodeId: 999_999 })).rejects.toBeInstanceOf(
      NotFoundError,
    );

    // A node without an admin address cannot be probed: it says so and keeps inventory's word.
    const bare = await op(bus, 'node.create', { name: 'bare.lab.example.com', available: true });
    const why = await until('bare node projected', async () => {
      const h = await health(bare.id).catch(() => null);
      return h?.reason.startsWith('not probed:') ? h : null;
    });
    expect(why).toMatchObject({ reason: 'not probed: no admin address', verdict: 'unknown', history: [] });
    expect(await bus.request(alivenessMessages.probe, { nodeId: bare.id })).toMatchObject({
      alive: false,
      stage: 'none',
      reason: 'not probed: no admin address',
    });
  });

  it('serves GET nodes/:id/health to operators only', async () => {
    const n = nodes[0]!;
    const ok = await stack.call('GET', `/nodes/${n.id}/health?limit=5`, undefined, testReadOnlyToken);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ nodeId: n.id, node: n.name, verdict: 'alive' });
    expect(ok.body.history.length).toBeGreaterThan(0);
    expect(ok.body.history.length).toBeLessThanOrEqual(5);
    expect((await stack.call('GET', `/nodes/${n.name}/health`)).body.nodeId).toBe(n.id);
    expect((await stack.call('GET', `/nodes/${n.id}/health`, undefined, 'nope-nope-nope-nope')).status).toBe(
      401,
    );
    expect((await stack.call('GET', '/nodes/999999/health')).status).toBe(404);
    expect((await stack.call('GET', `/nodes/${n.id}/health?limit=0`)).status).toBe(422);
  });
});

describe('node self-report', () => {
  const put = (id: number | string, body: unknown, token?: string) =>
    fetch(`${stack.api}/node-api/nodes/${id}/alive`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

  it('refuses a missing, wrong, operator or other node credential and changes nothing', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    expect((await getNode(a.id)).alive).toBe(true);
    expect((await put(a.id, { alive: false })).status).toBe(401);
    expect((await put(a.id, { alive: false }, 'not-the-secret')).status).toBe(401);
    expect((await put(a.id, { alive: false }, testAdminToken)).status).toBe(401);
    expect((await put(a.id, { alive: false }, b.credential)).status).toBe(401);
    expect((await put(999_999, { alive: false }, a.credential)).status).toBe(401);
    expect((await put(a.id, { alive: 'no' }, a.credential)).status).toBe(422);
    expect((await put(a.id, '{not json', a.credential)).status).toBe(422);
    expect((await put('x', { alive: false }, a.credential)).status).toBe(422);
    expect((await getNode(a.id)).alive).toBe(true);
  });

  it('applies a node’s own report; the probe holds off, then its verdict stands again', async () => {
    const a = nodes[0]!;
    const r = await put(a.id, { alive: false }, a.credential);
    expect(r).toEqual({ status: 200, body: { node: a.id, alive: false, changed: true, applied: true } });
    expect((await getNode(a.id)).alive).toBe(false);
    // The node still answers ping and SSH, so after the hold the probe reports it alive again.
    await until('probe re-asserts alive', async () => (await getNode(a.id)).alive);
  });

  it('does not let a parked (unavailable) node toggle itself dead on shutdown', async () => {
    const b = nodes[1]!;
    await update(b.id, { available: false });
    const r = await put(b.id, { alive: false }, b.credential);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ applied: false, changed: false });
    expect((await getNode(b.id)).alive).toBe(true);
    await update(b.id, { available: true });
  });
});

describe('bad input', () => {
  it('dead-letters malformed events without disturbing the service', async () => {
    const dead = async () => (await bus.jsm.streams.info(streamName(t.prefix, 'DEAD'))).state.messages;
    const before = await dead();
    await bus.js.publish(
      `${t.prefix}.evt.node.created.v1`,
      new TextEncoder().encode('{"not":"an envelope"}'),
    );
    const bad = bus.envelope('allocation.created.v1', { allocation: { id: 'x', address: '; rm -rf /' } });
    await bus.js.publish(`${t.prefix}.evt.allocation.created.v1`, encodeEnvelope(bad));
    await until('both dead-lettered', async () => (await dead()) >= before + 2, 10_000);
    const h = await health(nodes[0]!.id);
    expect(h.addresses).toEqual([nodes[0]!.net.ipv4]);
    expect((await getNode(nodes[0]!.id)).alive).toBe(true);
  });

  it('refuses to start with an unreadable cluster key or a bad setting, naming it', async () => {
    await expect(
      startStack(t, ['aliveness-probe'], { CROWBAR_SSH_KEY: '/nonexistent/cluster_key' }),
    ).rejects.toThrow(/CROWBAR_SSH_KEY cannot be read/);
    const notAKey = join(keyDir, 'not-a-key');
    writeFileSync(notAKey, cluster.publicKey);
    await expect(startStack(t, ['aliveness-probe'], { CROWBAR_SSH_KEY: notAKey })).rejects.toThrow(
      /CROWBAR_SSH_KEY is not an unencrypted OpenSSH private key/,
    );
    await expect(startStack(t, ['aliveness-probe'], { CROWBAR_PROBE_FAILURES: '0' })).rejects.toThrow(
      /CROWBAR_PROBE_FAILURES must be an integer from 1 to 100/,
    );
  });
});

describe('housekeeping', () => {
  it('lets only one instance sweep (advisory lock) and keeps the probe history bounded', async () => {
    const second = await hostService(alivenessProbeService, {
      env: { ...t.env, CROWBAR_PROBE_INTERVAL_MS: '200', CROWBAR_INSTANCE: 'aliveness-probe-second' },
    });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      expect(second.detail()).toMatchObject({ leader: false, sweeps: 0 });
      expect(stack.services.get('aliveness-probe')?.detail()).toMatchObject({ leader: true });
    } finally {
      await second.stop();
    }
    const db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    try {
      const sweeps = Number(stack.services.get('aliveness-probe')?.detail().sweeps);
      expect(sweeps).toBeGreaterThanOrEqual(20);
      const r = await db.query<{ n: number }>(
        'select max(c)::int as n from (select count(*) as c from aliveness_probe.probe_history group by node_id) x',
      );
      // Pruned every 20 sweeps to the newest `historyKeep`; since then one row per sweep, plus the
      // on-demand probes and a sweep that may finish while we look. Unpruned it would be > sweeps.
      expect(r.rows[0]?.n).toBeLessThanOrEqual(historyKeep + (sweeps % 20) + 6);
    } finally {
      await db.end();
    }
  });
});
