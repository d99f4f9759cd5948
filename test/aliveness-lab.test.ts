import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSsh, generateKeyPair } from '../shared/ssh/index.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { ensureFping, startSshd, type TestSshd } from './helpers/sshd.js';

const cluster = generateKeyPair('cluster');
let lab: Lab;
let node: NsNode;
let sshd: TestSshd;

/** Any of three echo requests answered, by fping (the probe's own tool; iputils' ping is not on every machine). */
const pings = (addr: string) =>
  spawnSync('fping', ['-c', '3', '-p', '300', '-t', '600', '-q', addr]).status === 0;

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

describe('test helpers: namespaces and sshd inside them', () => {
  it('reaches a namespace over IPv4 and IPv6 and logs in to its sshd', async () => {
    expect(pings(node.ipv4)).toBe(true);
    expect(pings(node.ipv6)).toBe(true);
    expect(lab.exec(node, ['ip', '-o', '-4', 'addr', 'show', 'eth0'])).toContain(node.ipv4);
    const s = await connectSsh({
      host: node.ipv4,
      port: 22,
      privateKey: cluster.privateKey,
      hostKey: sshd.hostKey,
    });
    const r = await s.exec('ip -o -4 addr show eth0');
    expect(r.stdout).toContain(node.ipv4);
    await s.end();
  });

  it('logs in over IPv6 (ULA) too', async () => {
    const v6 = await startSshd({
      authorizedKeys: [cluster.publicKey],
      netns: node.ns,
      host: node.ipv6,
      port: 2222,
    });
    try {
      const s = await connectSsh({
        host: node.ipv6,
        port: 2222,
        privateKey: cluster.privateKey,
        hostKey: v6.hostKey,
      });
      expect((await s.exec('echo alive')).stdout).toBe('alive\n');
      await s.end();
    } finally {
      await v6.cleanup();
    }
  });

  it('cuts the node off while its link is down', () => {
    lab.linkDown(node);
    try {
      expect(pings(node.ipv4)).toBe(false);
    } finally {
      lab.linkUp(node);
    }
    expect(pings(node.ipv4)).toBe(true);
  });

  it('removes its namespaces and links on cleanup', async () => {
    const other = createLab({ bridge: true });
    const a = other.addNode();
    other.addNode();
    expect(pings(a.ipv4)).toBe(true);
    other.cleanup();
    other.cleanup();
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(left).not.toContain(other.tag);
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain(other.tag);
  });
});
