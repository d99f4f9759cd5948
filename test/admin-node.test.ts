import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { allServices } from '../infra/services.js';
import { coreBarclampDir } from '../services/inventory/service.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * The admin node after `npm start` (issue 11; reference §8 bootstrap, §1.16 roles, §4.1 aliveness):
 * every service, the core barclamps only and the default admin node, as the launcher runs them. The
 * admin node is this machine: alive and available without anyone probing it, committed, its admin roles
 * ACTIVE through crowbar-joined-node (never an OS install), and its script roles skipped because host
 * changes are not enabled.
 */
const sh = promisify(execFile);
const hostFiles = ['/root/.ssh/authorized_keys', '/etc/resolv.conf'];
const snapshot = () =>
  hostFiles.map((f) => (existsSync(f) ? `${statSync(f).mtimeMs}:${readFileSync(f, 'utf8')}` : 'absent'));

let t: TestEnv;
let s: Stack;
let dir: string;
let before: string[];

beforeAll(async () => {
  before = snapshot();
  dir = mkdtempSync(join(tmpdir(), 'crowbar-admin-'));
  t = await createTestEnv();
  s = await startStack(
    t,
    allServices.map((d) => d.name),
    {
      // What the launcher passes (its defaults), on ports and addresses of this test's own.
      CROWBAR_ADMIN_NODE: 'admin.crowbar.internal',
      CROWBAR_BARCLAMPS: coreBarclampDir,
      CROWBAR_ADMIN_CIDR: '198.18.118.0/24',
      CROWBAR_ANNEAL_PASS_MS: '200',
      CROWBAR_DHCP_PORT: String(await pickPort(0)),
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_DNS_PORT: '0',
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_TFTP_PORT: '0',
      CROWBAR_BOOT_ROOT: join(dir, 'boot'),
      CROWBAR_PROBE_INTERVAL_MS: '300',
      CROWBAR_PROBE_FAILURES: '1',
    },
  );
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const noderoles = async () => (await s.call('GET', '/nodes/admin/node_roles')).body.noderoles as any[];

describe('the admin node after npm start', () => {
  it('is alive, available, committed, with every noderole ACTIVE and no install role (§8, §1.16)', {
    timeout: 120_000,
  }, async () => {
    // Done once it has joined the admin network and everything bound is ACTIVE.
    let seen: string[] = [];
    await until(
      'admin node converged',
      async () => {
        const nrs = await noderoles();
        seen = nrs.map((n) => `${n.role}=${n.state} ${n.runlog.slice(0, 200)}`);
        return nrs.some((n) => n.role === 'network-admin') && nrs.every((n) => n.state === 'active');
      },
      90_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; noderoles: ${seen.join(' | ')}`);
    });
    const admin = (await s.call('GET', '/nodes/admin')).body;
    expect(admin).toMatchObject({
      name: 'admin.crowbar.internal',
      admin: true,
      alive: true,
      available: true,
      bootenv: 'local',
      deployment: 'system',
      state: 'active',
    });
    const roles = (await noderoles()).map((n) => n.role).sort();
    expect(roles).toEqual(
      [
        'crowbar-access',
        'crowbar-admin-node',
        'crowbar-joined-node',
        'dhcp-database',
        'dns-database',
        'network-admin',
        'network-server',
        'provisioner-server',
      ].sort(),
    );
    // crowbar-installed-node is satisfied by crowbar-joined-node's provides, so nothing installs it.
    expect(roles).not.toContain('provisioner-os-install');
    expect(roles).not.toContain('crowbar-installed-node');
    const system = (await s.call('GET', '/deployments/system')).body;
    expect(system.state).toBe('committed');
    // Its address on the admin network comes from the admin range.
    const addrs = await s.call('GET', `/nodes/${admin.id}/addresses?category=admin`);
    expect(JSON.stringify(addrs.body)).toMatch(/198\.18\.118\.1[01]\/24/);
  });

  it('leaves the host alone: script roles are skipped, visibly, unless host changes are enabled', async () => {
    const access = (await noderoles()).find((n) => n.role === 'crowbar-access');
    const detail = (await s.call('GET', `/node_roles/${access.id}`)).body;
    expect(detail.state).toBe('active');
    expect(detail.runlog).toMatch(/^skipped: host changes not enabled/);
    const runs = (await s.call('GET', '/runs?all=true')).body.runs as any[];
    const run = runs.find((r) => r.noderoleId === access.id);
    expect(run).toMatchObject({ role: 'crowbar-access', state: 'done' });
    expect(run.reason).toMatch(/^skipped: host changes not enabled/);
    expect(snapshot()).toEqual(before);
  });

  it('is not probed: its aliveness is the control plane’s own (§4.1)', async () => {
    const admin = (await s.call('GET', '/nodes/admin')).body;
    // A probe sweep runs every 300 ms with one failure making a node dead; a phantom-like admin node
    // stays out of it, so after several sweeps it is still alive and the probe reports nothing for it.
    const probe = s.services.get('aliveness-probe')!;
    const swept = Number(probe.detail().sweeps);
    await until('three more probe sweeps', () => Number(probe.detail().sweeps) >= swept + 3, 20_000);
    const health = await s.call('GET', `/nodes/${admin.id}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ reporting: false, history: [] });
    expect((await s.call('GET', '/nodes/admin')).body.alive).toBe(true);
  });

  it('refuses to bind an OS-install role to the admin node (§1.16)', async () => {
    const r = await s.call('POST', '/node_roles', { node: 'admin', role: 'provisioner-os-install' });
    expect(r.status).toBe(409);
    expect(r.body.rule).toBe('the admin node is never installed');
    expect((await noderoles()).map((n) => n.role)).not.toContain('provisioner-os-install');
  });
});

describe('CROWBAR_ADMIN_HOST_CHANGES=true', () => {
  let t2: TestEnv;
  let s2: Stack;
  beforeAll(async () => {
    t2 = await createTestEnv();
    // The jig needs a cluster key to get as far as the host key check; this one never logs in anywhere.
    const key = join(mkdtempSync(join(tmpdir(), 'crowbar-admin-key-')), 'cluster');
    writeFileSync(key, 'not a key\n', { mode: 0o600 });
    s2 = await startStack(t2, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
      CROWBAR_ADMIN_HOST_CHANGES: 'true',
      CROWBAR_SSH_KEY: key,
      CROWBAR_PROBE_AFTER_RUN: 'false',
      CROWBAR_ANNEAL_PASS_MS: '100',
    });
  });
  afterAll(async () => {
    await s2?.stop();
    await t2?.cleanup();
  });

  it('binding crowbar-admin-node straight to an admin node binds crowbar-joined-node first, never an install (§1.16)', async () => {
    const admin = await s2.call('POST', '/nodes', { name: 'admin2.wizard.crowbar.test', admin: true });
    expect(admin.body).toMatchObject({ alive: true, available: true });
    const bound = await s2.call('POST', '/node_roles', { node: admin.body.id, role: 'crowbar-admin-node' });
    expect(bound.status, JSON.stringify(bound.body)).toBe(201);
    const roles = ((await s2.call('GET', `/nodes/${admin.body.id}/node_roles`)).body.noderoles as any[]).map(
      (n) => n.role,
    );
    expect(roles).toContain('crowbar-joined-node');
    expect(roles).not.toContain('crowbar-installed-node');
    expect(roles).not.toContain('provisioner-os-install');
  });

  it('hands the admin node’s script roles to the script jig instead of skipping them (the wizard’s admin node)', async () => {
    // The wizard creates the admin node and commits it: its admin roles are bound then.
    const admin = await s2.call('POST', '/nodes', { name: 'admin.wizard.crowbar.test', admin: true });
    expect(admin.status).toBe(201);
    expect((await s2.call('PUT', `/nodes/${admin.body.id}/commit`)).status).toBe(200);
    const access = await until('crowbar-access ran', async () => {
      const r = (await s2.call('GET', `/nodes/${admin.body.id}/node_roles/crowbar-access`)).body;
      return r.state === 'error' || r.state === 'active' ? r : null;
    });
    // Not skipped: the script jig took it, and refused before touching anything, because this test's
    // admin node has no pinned host key (nothing here may log in to this machine).
    expect(access.state).toBe('error');
    expect(access.runlog).toMatch(/no pinned SSH host key/);
    expect(access.runlog).not.toMatch(/skipped/);
    const roles = ((await s2.call('GET', `/nodes/${admin.body.id}/node_roles`)).body.noderoles as any[]).map(
      (n) => n.role,
    );
    expect(roles).toEqual(expect.arrayContaining(['crowbar-joined-node', 'crowbar-admin-node']));
    expect(roles).not.toContain('provisioner-os-install');
    expect((await s2.call('GET', `/nodes/${admin.body.id}`)).body).toMatchObject({
      alive: true,
      available: true,
    });
    expect(snapshot()).toEqual(before);
  });
});

describe("the admin node's address on a network is this machine's own there", () => {
  // A bridge of its own gives this machine an address on a network the operator then creates.
  const link = 'crowbar-t119';
  let t3: TestEnv;
  let s3: Stack;
  beforeAll(async () => {
    await sh('ip', ['link', 'add', link, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', '198.18.119.5/24', 'dev', link]);
    await sh('ip', ['link', 'set', link, 'up']);
    t3 = await createTestEnv();
    s3 = await startStack(t3, ['inventory', 'network-ipam', 'gateway'], {
      CROWBAR_ADMIN_NODE: 'admin.t3.crowbar.test',
      CROWBAR_ADMIN_CIDR: '198.18.118.0/24',
    });
  });
  afterAll(async () => {
    await s3?.stop();
    await t3?.cleanup();
    await sh('ip', ['link', 'del', link]).catch(() => undefined);
  });

  it('hints the address of the interface on the network, and network-ipam allocates it', async () => {
    const net = await s3.call('POST', '/networks', {
      name: 'storage',
      conduit: '1g1',
      ranges: [
        { name: 'admin', first: '198.18.119.2/24', last: '198.18.119.9/24' },
        { name: 'host', first: '198.18.119.20/24', last: '198.18.119.250/24' },
      ],
    });
    expect(net.status, JSON.stringify(net.body)).toBe(201);
    const hinted = await until('admin hint', async () => {
      const a = (await s3.call('GET', '/nodes/admin')).body;
      return a.hint?.['storage-v4addr'] ? a : null;
    });
    expect(hinted.hint['storage-v4addr']).toBe('198.18.119.5');
    let last: unknown;
    const alloc = await until('allocation', async () => {
      const r = await s3.call('POST', '/network_allocations', { node: hinted.name, network: 'storage' });
      last = r.body;
      return r.status === 201 ? r.body : null;
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    expect(JSON.stringify(alloc)).toContain('198.18.119.5/24');
  });
});
