import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFping,
  icmpStability,
  icmpSweep,
  sweepBoundMs,
} from '../services/aliveness-probe/probes/icmp.js';
import { probeNodes } from '../services/aliveness-probe/probes/pipeline.js';
import { ValidationError } from '../shared/errors.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { ensureFping, startSshd, type TestSshd } from './helpers/sshd.js';

const icmp = { timeoutMs: 300, retries: 0, intervalMs: 1 };
const cluster = generateKeyPair('cluster');
let lab: Lab;
let node: NsNode;
let sshd: TestSshd;

beforeAll(async () => {
  ensureFping();
  lab = createLab();
  node = lab.addNode();
  sshd = await startSshd({ authorizedKeys: [cluster.publicKey], netns: node.ns, host: node.ipv4 });
});
afterAll(async () => {
  await sshd?.cleanup();
  lab?.cleanup();
});

describe('ICMP stage: one fping process for many targets', () => {
  it('tells answering loopback and namespace addresses from silent ones', async () => {
    const r = await icmpSweep(
      ['127.0.0.1', '127.3.2.1', '::1', node.ipv4, node.ipv6, '198.19.255.254'],
      icmp,
    );
    expect(r.get('127.0.0.1')?.alive).toBe(true);
    expect(r.get('127.3.2.1')?.alive).toBe(true);
    expect(r.get('::1')?.alive).toBe(true);
    expect(r.get(node.ipv4)).toMatchObject({ alive: true, reason: 'ok' });
    expect(r.get(node.ipv6)?.alive).toBe(true);
    // Blackholed by the test setup: the kernel refuses to send.
    expect(r.get('198.19.255.254')?.alive).toBe(false);
    expect(r.get('198.19.255.254')?.reason).toMatch(/^icmp /);
  });

  it('reports an icmp timeout for a node whose link is down', async () => {
    lab.linkDown(node);
    try {
      const r = await icmpSweep([node.ipv4], icmp);
      expect(r.get(node.ipv4)).toEqual({ alive: false, rttMs: null, reason: 'icmp timeout' });
    } finally {
      lab.linkUp(node);
    }
    const end = Date.now() + 5000;
    while (!(await icmpSweep([node.ipv4], icmp)).get(node.ipv4)?.alive && Date.now() < end);
  });

  it('accepts only IP literals, so no name lookups and no option injection', async () => {
    await expect(icmpSweep(['-c1000'], icmp)).rejects.toBeInstanceOf(ValidationError);
    await expect(icmpSweep(['example.com'], icmp)).rejects.toBeInstanceOf(ValidationError);
    expect((await icmpSweep([], icmp)).size).toBe(0);
    expect(checkFping()).toMatch(/fping/i);
    expect(() => checkFping('/nonexistent/fping')).toThrow(/cannot run .*install Debian's fping/);
    await expect(icmpSweep(['127.0.0.1'], { ...icmp, fpingPath: '/nonexistent/fping' })).rejects.toThrow(
      /cannot run fping/,
    );
    expect(sweepBoundMs(1000, { timeoutMs: 1000, retries: 1, intervalMs: 1 })).toBeGreaterThan(2500);
  });
});

describe('recovery check of a dead node: every echo over a time span answered', () => {
  const stability = { count: 3, periodMs: 400, timeoutMs: 300 };

  it('passes a steady address and fails a silent one', async () => {
    const r = await icmpStability(['127.0.0.1', node.ipv4, '198.19.255.254'], stability);
    expect(r.get('127.0.0.1')?.alive).toBe(true);
    expect(r.get(node.ipv4)).toMatchObject({ alive: true, reason: 'ok' });
    expect(r.get('198.19.255.254')).toMatchObject({ alive: false, reason: 'icmp timeout' });
  });

  it('fails a link that drops in the middle of the span', async () => {
    const check = icmpStability([node.ipv4], stability);
    await new Promise((r) => setTimeout(r, 250));
    lab.linkDown(node);
    await new Promise((r) => setTimeout(r, 400));
    lab.linkUp(node);
    const r = (await check).get(node.ipv4);
    expect(r?.alive).toBe(false);
    expect(r?.reason).toMatch(/^icmp (unstable \([12]\/3 replies\)|timeout)$/);
    const end = Date.now() + 5000;
    while (!(await icmpSweep([node.ipv4], icmp)).get(node.ipv4)?.alive && Date.now() < end);
  });
});

describe('probe pipeline: ICMP then SSH with the pinned key', () => {
  const pipeline = () => ({
    icmp,
    stability: { count: 3, periodMs: 200, timeoutMs: 300 },
    ssh: { privateKey: cluster.privateKey, port: 22, timeoutMs: 2000, concurrency: 4 },
  });

  it('passes a healthy node and names each failure', async () => {
    const [ok] = await probeNodes(
      [{ nodeId: 1, addresses: [node.ipv6, node.ipv4], hostKey: sshd.hostKey }],
      pipeline(),
    );
    expect(ok).toMatchObject({
      nodeId: 1,
      ok: true,
      stage: 'none',
      reason: 'ok',
      address: node.ipv4,
      ssh: true,
    });

    const wrongKey = generateKeyPair('x').publicKey;
    const [mismatch] = await probeNodes(
      [{ nodeId: 1, addresses: [node.ipv4], hostKey: wrongKey }],
      pipeline(),
    );
    expect(mismatch).toMatchObject({ ok: false, stage: 'ssh', reason: 'host key mismatch' });

    await sshd.stop();
    try {
      const [refused] = await probeNodes(
        [{ nodeId: 1, addresses: [node.ipv4], hostKey: sshd.hostKey }],
        pipeline(),
      );
      expect(refused).toMatchObject({ ok: false, stage: 'ssh', reason: 'connection refused' });
      // Between SSH rounds (CROWBAR_PROBE_SSH_EVERY) an alive node is judged by ICMP alone.
      const [icmpOnly] = await probeNodes(
        [{ nodeId: 1, addresses: [node.ipv4], hostKey: sshd.hostKey, sshDue: false }],
        pipeline(),
      );
      expect(icmpOnly).toMatchObject({ ok: true, stage: 'none' });
      expect(icmpOnly?.ssh).toBeUndefined();
    } finally {
      await sshd.start();
    }

    const out = await probeNodes(
      [
        { nodeId: 2, addresses: [], hostKey: sshd.hostKey },
        { nodeId: 3, addresses: [node.ipv4], hostKey: null },
        { nodeId: 4, addresses: ['198.19.255.254'], hostKey: sshd.hostKey },
      ],
      pipeline(),
    );
    expect(out.map((o) => [o.nodeId, o.ok, o.reason.split(':')[0]])).toEqual([
      [2, null, 'not probed'],
      [3, null, 'not probed'],
      [4, false, 'icmp unreachable (Invalid argument)'],
    ]);
  });

  it('decides by ICMP alone when no cluster key is configured', async () => {
    const [o] = await probeNodes([{ nodeId: 1, addresses: [node.ipv4], hostKey: null }], {
      icmp,
      stability: null,
      ssh: null,
    });
    expect(o).toMatchObject({ ok: true, stage: 'none' });
  });
});
