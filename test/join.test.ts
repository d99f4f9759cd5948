import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { createLab, type Lab, type NsNode } from './helpers/netns.js';
import { type Stack, startStack, testReadOnlyToken } from './helpers/stack.js';

/**
 * A machine installed without discovery joins (the seed's "manage other nodes that are not in
 * Sledgehammer"; reference §7, "registered manually"): in its own network, mount and UTS namespaces (so
 * nothing on this host changes), it fetches /join.sh from the provisioner and runs it with a join token
 * from the API. It becomes a node under its own name, with its host key, facts, bootenv local and
 * crowbar-joined-node (never the discovery graph), quarantined, and reports itself alive.
 */
let t: TestEnv;
let stack: Stack;
let lab: Lab;
let machine: NsNode;
let dir: string;
let provisioner: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-join-'));
  mkdirSync(join(dir, 'ssh'));
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-f',
    join(dir, 'ssh', 'ssh_host_ed25519_key'),
  ]);
  lab = createLab({ bridge: true });
  machine = lab.addNode();
  const subnet = machine.ipv4.replace(/\.\d+$/, '.0/24');
  const httpPort = await pickPort(0);
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'provisioner', 'gateway'], {
    CROWBAR_ADMIN_CIDR: subnet,
    CROWBAR_HTTP_HOST: '0.0.0.0',
    CROWBAR_HTTP_PORT: String(await pickPort(0)),
    CROWBAR_PROVISIONER_HTTP_PORT: String(httpPort),
    CROWBAR_TFTP_PORT: '0',
    CROWBAR_BOOT_ROOT: join(dir, 'boot'),
    CROWBAR_DISCOVERY_SECRET: 'test-discovery-secret-0123456789',
    CROWBAR_DNS_DOMAIN: 'join.test',
  });
  provisioner = `http://${machine.gateway4}:${httpPort}`;
}, 120_000);

afterAll(async () => {
  lab?.cleanup();
  await stack?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs the join as the machine's root, in its own mount and UTS namespaces: /etc and /usr/local are
 * overlays over the host's (changes land in the test's directory), /etc/ssh holds the machine's own host
 * key, and there is no systemd, so the script touches nothing of this host.
 */
let runs = 0;
function runJoin(token: string): Promise<{ code: number | null; out: string }> {
  const o = join(dir, `overlay${++runs}`);
  const overlay = (target: string, n: string) =>
    `mkdir -p ${o}/${n}/up ${o}/${n}/work && mount -t overlay overlay -o lowerdir=${target},upperdir=${o}/${n}/up,workdir=${o}/${n}/work ${target}`;
  const script = [
    'set -e',
    overlay('/etc', 'etc'),
    overlay('/usr/local', 'local'),
    `mount --bind ${dir}/ssh /etc/ssh`,
    'if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi',
    'hostname joined1.join.test',
    `curl -fsS ${provisioner}/join.sh | sh -s -- '${token}'`,
    'echo "node.env: $(stat -c %a /etc/crowbar/node.env) $(grep -c CREDENTIAL= /etc/crowbar/node.env)"',
  ].join('\n');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      machine.ns,
      'unshare',
      '--mount',
      '--uts',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
  );
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

describe('joining a machine without discovery', () => {
  it('refuses join tokens to read-only operators, bad lifetimes, and machines with a wrong token', async () => {
    expect((await stack.call('POST', '/join_tokens', {}, testReadOnlyToken)).status).toBe(403);
    for (const bad of [{ ttlSeconds: 5 }, { ttlSeconds: 'x' }, { extra: 1 }])
      expect((await stack.call('POST', '/join_tokens', bad)).status, JSON.stringify(bad)).toBe(422);
    const before = (await stack.call('GET', '/nodes')).body.nodes.length;
    const r = await runJoin('cbj1.1.0.forged');
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/registration refused \(HTTP 401\)/);
    expect((await stack.call('GET', '/nodes')).body.nodes.length).toBe(before);
  });

  it('joins with a token: own name and host key, bootenv local, crowbar-joined-node, quarantined, alive', async () => {
    const tok = await stack.call('POST', '/join_tokens', { ttlSeconds: 600 });
    expect(tok.status).toBe(201);
    expect(tok.body.token).toMatch(/^cbj1\./);
    // A join token is for registering only.
    expect((await stack.call('GET', '/nodes', undefined, tok.body.token)).status).toBe(403);
    const r = await runJoin(tok.body.token);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('node.env: 600 1');
    expect(r.out).toMatch(/crowbar-join: alive reported/);
    const n = (await stack.call('GET', '/nodes/joined1.join.test')).body;
    const key = readFileSync(join(dir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .split(' ')
      .slice(0, 2)
      .join(' ');
    expect(n).toMatchObject({ bootenv: 'local', available: false, alive: true, sshHostKey: key });
    expect(n.discovery.facts).toMatchObject({ joined: true, hostname: 'joined1.join.test' });
    expect(n.discovery.macs.length).toBeGreaterThanOrEqual(1);
    const roles = (await stack.call('GET', `/nodes/${n.id}/node_roles`)).body.noderoles.map(
      (x: { role: string }) => x.role,
    );
    expect(roles).toContain('crowbar-joined-node');
    expect(roles).toContain('network-admin');
    expect(roles).not.toContain('crowbar-managed-node');
    expect(roles).not.toContain('provisioner-os-install');
  });
});
