import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDiscoveryImage } from '../infra/images/discovery.js';
import { createLab, type Lab } from '../infra/lab/fleet.js';
import type { LabNode } from '../infra/lab/node.js';
import { ensureVmPrograms } from '../infra/lab/vm.js';
import { pickPort } from '../infra/ports.js';
import { until } from './helpers/dhcp-clients.js';
import { dig, ensureTool } from './helpers/dig.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { ensureFping, ensureSshd } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';
import { makeKeyPair } from './helpers/vm-peers.js';

/**
 * The operator's story (DESIGN §1) on three lightweight lab nodes and one real-firmware VM (infra/lab/),
 * through the REST API only: each lightweight node's firmware DHCPs like an iPXE ROM, fetches its iPXE
 * script from the provisioner and runs the discovery image's own agent; the VM (SeaBIOS + iPXE under
 * QEMU, on the same bridge) PXE-boots the discovery image itself. Each registers (quarantined);
 * committed, the annealer runs the discovery roles over SSH; dns-db answers A, AAAA (the admin network's
 * ULA /64) and PTR for each, and each one's DHCP lease holds its reserved admin address. Then
 * provisioner-os-install on two lightweight nodes: the lab installer writes into the node's overlay,
 * sets bootenv local, the node boots "from disk" (crowbar-join), and the roles re-run with the install
 * skipped. Last, one node's sshd stops: the aliveness probe makes it dead with a reason and its
 * noderoles ripple; sshd back, everything (the VM too) re-anneals.
 * About 2 minutes here: the VM's boot into discovery under software emulation (~35 s alone, more on a
 * loaded machine) sets the pace of the first test; the rest is the annealer over SSH.
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
let vm: LabNode;
/** The lightweight nodes, then the VM. */
const fleet = () => [...nodes, vm];

const nameOf = (n: LabNode) => `d${n.spec.mac.replaceAll(':', '-')}.${domain}`;
/** An IPv6 address in its compressed lower-case form (the API and dig may write it differently). */
const canonicalV6 = (a: string) => new URL(`http://[${a}]/`).hostname.slice(1, -1);
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
    .filter((r) => r.state !== 'active' && fleet().some((n) => nameOf(n) === r.node))
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
  ensureVmPrograms(() => undefined);
  const image = ensureDiscoveryImage({ log: (l) => process.stderr.write(`[image] ${l}\n`) });
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
      CROWBAR_DISCOVERY_IMAGE: image.dir,
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
  [vm] = (await lab.addVms(1)) as [LabNode];
}, 600_000);

afterAll(async () => {
  // Each step's time on the test's output, so a slow one is named when the hook runs out of time.
  const step = async (what: string, f: () => Promise<unknown> | undefined) => {
    const t0 = Date.now();
    await f();
    process.stdout.write(`[lab] ${what} stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  };
  await step('lab', () => lab?.stop());
  await step('stack', () => stack?.stop());
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 150_000);

describe('the lab: lightweight nodes through discovery', () => {
  it('power on (3 nodes, 1 VM) → registered and quarantined → committed → discovery roles ACTIVE over SSH → A, AAAA, PTR and the reserved lease', async () => {
    const started = Date.now();
    const at = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    await Promise.all(fleet().map((n) => n.powerOn()));
    const all = fleet();
    const registered = await Promise.all(
      all.map((n) =>
        until(
          `${n.spec.label} registered`,
          async () => {
            const r = await stack.call('GET', `/nodes/${nameOf(n)}`);
            return r.status === 200 && r.body.sshHostKey ? r.body : null;
          },
          // The VM boots real firmware and a kernel under software emulation.
          n === vm ? 300_000 : 60_000,
        ).then(
          (body) => {
            process.stdout.write(`[lab] ${n.spec.label} registered after ${at()}\n`);
            return body;
          },
          async (e: Error) => {
            throw new Error(`${e.message}; console:\n${(await n.console()).slice(-3000)}`);
          },
        ),
      ),
    );
    const serials = new Set<string>();
    for (const [i, n] of registered.entries()) {
      const m = all[i]!;
      expect(n).toMatchObject({ available: false, bootenv: 'sledgehammer' });
      expect(n.discovery.macs).toEqual([m.spec.mac]);
      expect(n.discovery.facts.dmi.serial).toBe(m.spec.serial);
      serials.add(n.discovery.facts.dmi.serial);
      const files = (await stack.call('GET', `/nodes/${n.id}/boot_events`)).body.map(
        (e: { file: string }) => e.file,
      );
      expect(files).toContain(`/boot/${m.spec.mac.replaceAll(':', '-')}.ipxe`);
    }
    // The lightweight nodes' one disk is the lab's; the VM's is its empty virtio disk, and it really
    // fetched the discovery image's kernel and initramfs.
    for (const n of registered.slice(0, 3))
      expect(n.discovery.facts.disks.map((d: { name: string }) => d.name)).toEqual(['lab0']);
    const vmNode = registered[3]!;
    expect(vm.spec.mac).toMatch(/^52:54:00:/);
    expect(vmNode.discovery.facts.disks.map((d: { name: string }) => d.name)).toContain('vda');
    const vmFiles = (await stack.call('GET', `/nodes/${vmNode.id}/boot_events`)).body.map(
      (e: { file: string }) => e.file,
    );
    expect(vmFiles).toEqual(expect.arrayContaining(['/discovery/vmlinuz', '/discovery/initrd.img']));
    // The API has the node before the agent prints its answer: the console line follows.
    await until(
      'the VM console showing the registration',
      async () => (await vm.console()).includes(`crowbar-agent: registered as node ${vmNode.id} `),
      30_000,
    );
    expect(serials.size).toBe(4);
    // Host keys differ per node: each made its own.
    expect(new Set(registered.map((n) => n.sshHostKey)).size).toBe(4);

    for (const n of registered) expect((await stack.call('PUT', `/nodes/${n.id}/commit`)).status).toBe(200);
    for (const n of registered) {
      const access = await activeRole(n.name, 'crowbar-access', 300_000);
      expect(access.runCount).toBe(1);
      await activeRole(n.name, 'crowbar-managed-node', 150_000);
    }
    process.stdout.write(`[lab] 3 nodes and the VM managed after ${at()}\n`);

    const port = stack.services.get('dns-db')!.detail().dnsPort as number;
    for (const [i, n] of registered.entries()) {
      const addr = (await stack.call('GET', `/nodes/${n.id}/addresses?category=admin`)).body;
      const addresses = (addr.allocations ?? addr).map((a: { address: string }) => a.address.split('/')[0]);
      const v4 = addresses.find((a: string) => a.includes('.'));
      const v6 = addresses.find((a: string) => a.includes(':'));
      expect(v4).toMatch(new RegExp(`^${subnet.replaceAll('.', '\\.')}\\.`));
      // The admin network's IPv6: a /64 of the installation's ULA prefix (CROWBAR_ADMIN_V6PREFIX=auto).
      expect(v6, JSON.stringify(addresses)).toMatch(/^fd[0-9a-f]{2}:/);
      const a = await dig('127.0.0.1', port, [n.name, 'A']);
      expect(a.answer.map((r) => r.data)).toEqual([v4]);
      const aaaa = await dig('127.0.0.1', port, [n.name, 'AAAA']);
      expect(aaaa.answer.map((r) => canonicalV6(r.data))).toEqual([canonicalV6(v6)]);
      for (const reverse of [v4, v6]) {
        const ptr = await dig('127.0.0.1', port, ['-x', reverse]);
        expect(
          ptr.answer.map((r) => r.data),
          `PTR of ${reverse}`,
        ).toEqual([`${n.name}.`]);
      }
      // dhcp-db reserves the node's admin address, and the node's lease holds it.
      const reservations = (await stack.call('GET', `/dhcp/reservations?node=${n.id}`)).body;
      expect(reservations.map((r: { address: string | null }) => r.address)).toEqual([v4]);
      const leases = (await until(
        `${n.name} holding its reserved address`,
        async () => {
          const r = (await stack.call('GET', `/dhcp/leases?node=${n.id}&state=bound`)).body;
          return r.leases.some((l: { address: string }) => l.address === v4) ? r.leases : null;
        },
        30_000,
      )) as { address: string; mac: string; range: string }[];
      expect(leases.find((l) => l.address === v4)).toMatchObject({ mac: all[i]!.spec.mac, range: 'host' });
      // The lightweight node really sits at that address (the VM is reached over SSH only: its lease says it).
      const m = all[i]!;
      if (m !== vm) expect(await m.exec('ip -o -4 addr show eth0')).toContain(`${v4}/24`);
    }
  }, 900_000);

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
