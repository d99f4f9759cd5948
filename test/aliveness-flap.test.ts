import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/bus.js';
import { type ConsumerHandle, consume } from '../shared/bus/consume.js';
import {
  alivenessMessages,
  inventoryEvents,
  inventoryRpcs,
  ipamMessages,
  streams,
} from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { op } from './helpers/inventory.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { ensureFping, startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';

/** The service's defaults except a 1 s interval, so 60 s of flapping is ~60 sweeps. */
const probe = { interval: 1000, failures: 3, icmpTimeout: 500, icmpRetries: 1, sshTimeout: 3000 };
const flapSeconds = 60;

const cluster = generateKeyPair('cluster');
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let lab: Lab;
let net: NsNode;
let sshd: TestSshd;
let keyDir: string;
let nodeId: number;
let watcher: ConsumerHandle;
const aliveChanges: { alive: boolean; reason: string; at: number }[] = [];

beforeAll(async () => {
  ensureFping();
  t = await createTestEnv();
  keyDir = mkdtempSync(join(tmpdir(), 'crowbar-key-'));
  writeFileSync(join(keyDir, 'cluster'), cluster.privateKey, { mode: 0o600 });
  lab = createLab();
  net = lab.addNode();
  sshd = await startSshd({ authorizedKeys: [cluster.publicKey], netns: net.ns, host: net.ipv4 });
  stack = await startStack(t, ['inventory', 'aliveness-probe'], {
    LOG_LEVEL: process.env.TEST_LOG ?? 'silent',
    CROWBAR_SSH_KEY: join(keyDir, 'cluster'),
    CROWBAR_PROBE_INTERVAL_MS: String(probe.interval),
    CROWBAR_PROBE_FAILURES: String(probe.failures),
    CROWBAR_PROBE_ICMP_TIMEOUT_MS: String(probe.icmpTimeout),
    CROWBAR_PROBE_ICMP_RETRIES: String(probe.icmpRetries),
    CROWBAR_PROBE_SSH_TIMEOUT_MS: String(probe.sshTimeout),
  });
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'flap-test', log, streams });
  const created = await op(bus, 'node.create', {
    name: 'flappy.lab.example.com',
    sshHostKey: sshd.hostKey,
    available: true,
  });
  nodeId = created.id;
  // Watch what an external tool would: inventory's node.changed events.
  watcher = await consume(bus, {
    decl: {
      stream: 'EVENTS',
      durable: 'flap-test-node-changes',
      filterSubject: 'evt.node.changed.v1',
      ackWaitMs: 10_000,
      maxDeliver: 3,
    },
    log,
    handlers: [
      [
        inventoryEvents.nodeChanged,
        async (d) => {
          if (d.node.id === nodeId && d.changed.includes('alive'))
            aliveChanges.push({ alive: d.node.alive, reason: d.reason, at: Date.now() });
        },
      ],
    ],
  });
  await bus.publish(ipamMessages.allocationCreated, {
    allocation: {
      id: 1,
      nodeId,
      node: 'flappy.lab.example.com',
      networkId: 1,
      network: 'admin',
      category: 'admin',
      range: 'host',
      address: `${net.ipv4}/30`,
      family: 'ipv4',
    },
  });
});

afterAll(async () => {
  await watcher?.stop();
  await bus?.close();
  await stack?.stop();
  await sshd?.cleanup();
  lab?.cleanup();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  await t?.cleanup();
});

describe('flapping interface', () => {
  it(`toggled at 1 Hz for ${flapSeconds} s causes at most 2 aliveness changes`, {
    timeout: 150_000,
  }, async () => {
    const end = Date.now() + 20_000;
    while (!(await bus.request(inventoryRpcs.getNode, { node: nodeId })).alive) {
      if (Date.now() > end) throw new Error('node never became alive');
      await new Promise((r) => setTimeout(r, 200));
    }
    const baseline = aliveChanges.length;
    const start = Date.now();
    // One down/up per second on an absolute schedule. The link is down for 700 ms, longer than the
    // probe's echo plus retry (500 ms), and each cycle's down starts at a different offset: a probe
    // that happened to fire in the same phase every second would otherwise never see the link down.
    const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, start + ms - Date.now())));
    for (let i = 0; i < flapSeconds; i++) {
      const offset = (i * 230) % 300;
      await at(i * 1000 + offset);
      lab.linkDown(net);
      await at(i * 1000 + offset + 700);
      lab.linkUp(net);
    }
    await at(flapSeconds * 1000);
    const h = await bus.request(alivenessMessages.nodeHealth, { nodeId, limit: 500 });
    const failed = h.history.filter((x) => !x.ok && Date.parse(x.at) >= start);
    const changes = aliveChanges.length - baseline;
    log.info({ changes, failedProbes: failed.length, probes: h.history.length }, 'flap result');
    // The flapping really reached the probe (some probes failed), yet the node did not churn.
    expect(failed.length).toBeGreaterThan(0);
    expect(changes).toBeLessThanOrEqual(2);
    // Once the link stays up the node is alive.
    const settle = Date.now() + 15_000;
    while (!(await bus.request(inventoryRpcs.getNode, { node: nodeId })).alive) {
      if (Date.now() > settle) throw new Error('node not alive after the flapping stopped');
      await new Promise((r) => setTimeout(r, 200));
    }
  });
});
