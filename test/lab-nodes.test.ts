import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, type Lab } from '../infra/lab/fleet.js';
import type { LabNode } from '../infra/lab/node.js';
import { pickPort } from '../infra/ports.js';
import { until } from './helpers/dhcp-clients.js';
import { dig, ensureTool } from './helpers/dig.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { ensureFping, ensureSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';
import { makeKeyPair } from './helpers/vm-peers.js';

/**
 * The operator's story (DESIGN §1) on three lightweight lab nodes (infra/lab/), through the REST API only:
 * each node's firmware DHCPs like an iPXE ROM, fetches its iPXE script from the provisioner and runs the
 * discovery image's own agent, which registers it (quarantined); committed, the annealer runs the
 * discovery roles over SSH; dns-db answers A and PTR for each. Then provisioner-os-install on two of
 * them: the lab installer writes into the node's overlay, sets bootenv local, the node boots "from
 * disk" (crowbar-join), and the roles re-run with the install skipped. Last, one node's sshd stops: the
 * aliveness probe makes it dead with a reason and its noderoles ripple; sshd back, it re-anneals.
 * About 50 s here (most of it the stack starting and the annealer over SSH).
 */
const subnet = '198.18.122';
const server = `${subnet}.10`;
const domain = 'lab.test';
const labName = `t${randomBytes(2).toString('hex')}`;
let t: TestEnv;
let stack: Stack;
let lab: Lab;
let dir: string;
let nodes: LabNode[];

const nameOf = (n: LabNode) => `d${n.spec.mac.replaceAll(':', '-')}.${domain}`;
type Noderole = { id: number; role: string; state: string; runCount: number; runlog?: string };

async function noderole(node: string, role: string): Promise<Noderole> {
  return (await stack.call('GET', `/nodes/${node}/node_roles/${role}`)).body as Noderole;
}
/** Every noderole of the lab nodes that is not ACTIVE, as `node role state` (with the run log's tail on ERROR). */
async function unsettled(): Promise<string[]> {
  const rs = (await stack.call('GET', '/node_roles?limit=1000')).body.noderoles as (Noderole & {
    node: string;
  })[];
  return rs
    .filter((r) => r.state !== 'active' && nodes.some((n) => nameOf(n) === r.node))
    .map(
      (r) =>
        `${r.node} ${r.role} ${r.state}${r.state === 'error' ? `: ${(r.runlog ?? '').slice(-300)}` : ''}`,
    );
}

/** Waits until every noderole of every lab node is ACTIVE; fails naming the ones that are not. */
async function converged(ms: number): Promise<void> {
  let last: string[] = [];
  await until(
    'every noderole of the lab nodes ACTIVE',
    async () => {
      last = await unsettled();
      return last.length === 0;
    },
    ms,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; not ACTIVE: ${last.join('; ')}`);
  });
}

async function activeRole(node: string, role: string, ms: number, after = 0): Promise<Noderole> {
  return until(
    `${role} on ${node} ACTIVE (run count > ${after})`,
    async () => {
      const r = await noderole(node, role);
      if (r.state === 'error') throw new Error(`${role} failed on ${node}: ${r.runlog}`);
      return r.state === 'active' && r.runCount > after ? r : null;
    },
    ms,
  );
}

beforeAll(async () => {
  ensureSshd();
  ensureFping();
  ensureTool('dig', 'bind9-dnsutils');
  dir = mkdtempSync(join(tmpdir(), 'crowbar-lab-'));
  makeKeyPair(dir, 'cluster', 'crowbar-test-cluster');
  lab = await createLab({ name: labName, dir: join(dir, 'lab'), address: `${server}/24` });
  t = await createTestEnv();
  stack = await startStack(
    t,
    [
      'inventory',
      'network-ipam',
      'annealer',
      'jig-runner',
      'dhcp-db',
      'dns-db',
      'provisioner',
      'aliveness-probe',
      'gateway',
    ],
    {
      CROWBAR_ANNEAL_PASS_MS: '200',
      CROWBAR_ADMIN_CIDR: `${subnet}.0/24`,
      CROWBAR_DHCP_INTERFACES: lab.bridge.name,
      CROWBAR_HTTP_HOST: '0.0.0.0',
      CROWBAR_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_TFTP_PORT: '0',
      CROWBAR_BOOT_ROOT: join(dir, 'boot'),
      CROWBAR_DISCOVERY_SECRET: 'test-discovery-secret-0123456789',
      CROWBAR_SSH_KEY: join(dir, 'cluster'),
      CROWBAR_DNS_DOMAIN: domain,
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_DNS_PORT: '0',
      CROWBAR_DNS_SERVERS: server,
      CROWBAR_PROBE_INTERVAL_MS: '1000',
      CROWBAR_PROBE_FAILURES: '2',
      CROWBAR_PROBE_SSH_TIMEOUT_MS: '2000',
    },
  );
  await until(
    'dhcp-db serving the lab bridge with the provisioner boot map',
    async () => {
      const s = (await stack.call('GET', '/dhcp/stats')).body;
      return s.interfaces?.[0]?.listening && s.bootMap?.source === 'provisioner';
    },
    30_000,
  );
  nodes = await lab.addNodes(3);
}, 120_000);

afterAll(async () => {
  await lab?.stop();
  await stack?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('the lab: lightweight nodes through discovery', () => {
  it('power on → registered and quarantined → committed → discovery roles ACTIVE over SSH → A and PTR', async () => {
    const started = Date.now();
    await Promise.all(nodes.map((n) => n.powerOn()));
    const registered = await Promise.all(
      nodes.map((n) =>
        until(
          `${n.spec.label} registered`,
          async () => {
            const r = await stack.call('GET', `/nodes/${nameOf(n)}`);
            return r.status === 200 && r.body.sshHostKey ? r.body : null;
          },
          60_000,
        ).catch(async (e: Error) => {
          throw new Error(`${e.message}; console:\n${(await n.console()).slice(-3000)}`);
        }),
      ),
    );
    process.stdout.write(`[lab] 3 nodes registered after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    const serials = new Set<string>();
    for (const [i, n] of registered.entries()) {
      expect(n).toMatchObject({ available: false, bootenv: 'sledgehammer' });
      expect(n.discovery.macs).toEqual([nodes[i]!.spec.mac]);
      expect(n.discovery.facts.dmi.serial).toBe(nodes[i]!.spec.serial);
      expect(n.discovery.facts.disks.map((d: { name: string }) => d.name)).toEqual(['lab0']);
      serials.add(n.discovery.facts.dmi.serial);
      const files = (await stack.call('GET', `/nodes/${n.id}/boot_events`)).body.map(
        (e: { file: string }) => e.file,
      );
      expect(files).toContain(`/boot/${nodes[i]!.spec.mac.replaceAll(':', '-')}.ipxe`);
    }
    expect(serials.size).toBe(3);
    // Host keys differ per node: each made its own.
    expect(new Set(registered.map((n) => n.sshHostKey)).size).toBe(3);

    for (const n of registered) expect((await stack.call('PUT', `/nodes/${n.id}/commit`)).status).toBe(200);
    for (const n of registered) {
      const access = await activeRole(n.name, 'crowbar-access', 300_000);
      expect(access.runCount).toBe(1);
      await activeRole(n.name, 'crowbar-managed-node', 150_000);
    }
    process.stdout.write(`[lab] 3 nodes managed after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    const port = stack.services.get('dns-db')!.detail().dnsPort as number;
    for (const n of registered) {
      const addr = (await stack.call('GET', `/nodes/${n.id}/addresses?category=admin`)).body;
      const v4 = (addr.allocations ?? addr)
        .map((a: { address: string }) => a.address.split('/')[0])
        .find((a: string) => a.includes('.'));
      expect(v4).toMatch(new RegExp(`^${subnet.replaceAll('.', '\\.')}\\.`));
      const a = await dig('127.0.0.1', port, [n.name, 'A']);
      expect(a.answer.map((r) => r.data)).toEqual([v4]);
      const ptr = await dig('127.0.0.1', port, ['-x', v4]);
      expect(ptr.answer.map((r) => r.data)).toEqual([`${n.name}.`]);
      // The node really sits at that address.
      const node = nodes.find((x) => nameOf(x) === n.name)!;
      expect(await node.exec('ip -o -4 addr show eth0')).toContain(`${v4}/24`);
    }
  }, 600_000);

  it('provisioner-os-install on two nodes: installed into their overlays, booted from disk, roles re-run with the install skipped', async () => {
    const started = Date.now();
    const targets = nodes.slice(0, 2);
    const before = new Map<string, { access: number; key: string }>();
    for (const n of targets) {
      const node = (await stack.call('GET', `/nodes/${nameOf(n)}`)).body;
      before.set(nameOf(n), {
        access: (await noderole(nameOf(n), 'crowbar-access')).runCount,
        key: node.sshHostKey,
      });
    }
    expect((await stack.call('POST', '/deployments', { name: 'compute', parent: 'system' })).status).toBe(
      201,
    );
    for (const n of targets) {
      const bound = await stack.call('POST', '/node_roles', {
        node: nameOf(n),
        role: 'provisioner-os-install',
        deployment: 'compute',
      });
      expect(bound.status, JSON.stringify(bound.body)).toBe(201);
    }
    expect((await stack.call('PUT', '/deployments/compute/commit')).status).toBe(200);

    for (const n of targets) {
      const name = nameOf(n);
      await until(
        `${name} booted its installed system and reported alive`,
        async () => /crowbar-join: alive reported/.test(await n.console()),
        360_000,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}; console:\n${(await n.console()).slice(-4000)}`);
      });
      const node = (await stack.call('GET', `/nodes/${name}`)).body;
      expect(node).toMatchObject({ alive: true, bootenv: 'local' });
      // The installed system made its own host key at its first boot, and crowbar-join re-pinned it.
      expect(node.sshHostKey).toMatch(/^ssh-ed25519 /);
      expect(node.sshHostKey).not.toBe(before.get(name)!.key);
      await activeRole(name, 'crowbar-access', 300_000, before.get(name)!.access);
      const install = await until(
        `provisioner-os-install on ${name} re-run as a skip`,
        async () => {
          const r = await noderole(name, 'provisioner-os-install');
          return r.state === 'active' &&
            /jig skipped|nothing to do: the node runs the system installed/.test(r.runlog ?? '')
            ? r
            : null;
        },
        120_000,
      );
      expect(install.state).toBe('active');
      const console = await n.console();
      expect(console.match(/crowbar-agent: bootstate debian-12-install: installing/g)).toHaveLength(1);
      expect(console).toContain('crowbar-agent: installed into the overlay root');
      // What the installer wrote is on the node's disk (its overlay), not on this machine.
      expect((await n.exec('cat /etc/hostname')).trim()).toBe(name.split('.')[0]);
      expect(await n.exec('cat /etc/crowbar/installed')).toContain('BOOTENV=debian-12-install');
    }
    // The third node was left alone.
    expect((await stack.call('GET', `/nodes/${nameOf(nodes[2]!)}`)).body.bootenv).toBe('sledgehammer');
    process.stdout.write(
      `[lab] 2 nodes installed and re-annealed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  }, 600_000);

  it('sshd stopped: dead with its reason, noderoles rippled; sshd back: everything re-anneals to ACTIVE', async () => {
    const n = nodes[2]!;
    const name = nameOf(n);
    // The installs rebooted two nodes, and roles of those nodes (e.g. network-server, which this node's
    // network-admin needs) re-run after them: start from a converged cluster.
    await converged(150_000);
    const managed = await noderole(name, 'crowbar-managed-node');
    expect(managed.state).toBe('active');
    await n.fault({ kind: 'sshd-stop' });
    const dead = await until(
      `${name} dead`,
      async () => {
        const r = (await stack.call('GET', `/nodes/${name}`)).body;
        return r.alive === false ? r : null;
      },
      30_000,
    );
    expect(dead.aliveReason).toMatch(/^probe: /);
    const rippled = (await stack.call('GET', `/nodes/${name}/node_roles`)).body.noderoles as Noderole[];
    const states = new Set(rippled.map((r) => r.state));
    expect(
      states.has('todo') || states.has('blocked'),
      JSON.stringify(rippled.map((r) => [r.role, r.state])),
    ).toBe(true);
    expect(states.has('active')).toBe(false);

    await n.clear();
    await until(
      `${name} alive again`,
      async () => (await stack.call('GET', `/nodes/${name}`)).body.alive === true,
      30_000,
    );
    await activeRole(name, 'crowbar-managed-node', 150_000, managed.runCount);
    // Everything on the node (and so in the lab) re-anneals, in the graph's order.
    // Generous: in CI this runs beside VM tests on a loaded machine.
    await converged(150_000);
  }, 600_000);
});
