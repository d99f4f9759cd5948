import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDiscoveryImage } from '../infra/images/discovery.js';
import { pickPort } from '../infra/ports.js';
import { until } from './helpers/dhcp-clients.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';
import { bootVm, createVmBridge, ensureVmPrograms, type Vm, type VmBridge } from './helpers/vm.js';
import { makeKeyPair } from './helpers/vm-peers.js';

/**
 * The operator's story, step 2, on real firmware: SeaBIOS and OVMF VMs (QEMU's iPXE ROM, TCG) PXE-boot
 * from our DHCP and the provisioner's HTTP into the discovery image, register through the gateway with
 * the discovery token from their boot script, and once committed the annealer logs in over SSH with
 * the cluster key (crowbar-access, dns-client). Everything here is the real control plane.
 */
const server = '198.18.107.10';
const domain = 'disc.test';
let t: TestEnv;
let stack: Stack;
let bridge: VmBridge;
let dir: string;
const vms: Vm[] = [];

const macs = { bios: '52:54:00:6b:00:01', uefi: '52:54:00:6b:00:02' } as const;
const nodeName = (mac: string) => `d${mac.replaceAll(':', '-')}.${domain}`;

beforeAll(async () => {
  ensureVmPrograms(() => undefined);
  const image = ensureDiscoveryImage({ log: (l) => process.stderr.write(`[image] ${l}\n`) });
  dir = mkdtempSync(join(tmpdir(), 'crowbar-disc-'));
  makeKeyPair(dir, 'cluster', 'crowbar-test-cluster');
  bridge = createVmBridge({ address: server, prefix: 24 });
  const apiPort = await pickPort(0);
  t = await createTestEnv();
  stack = await startStack(
    t,
    ['inventory', 'network-ipam', 'annealer', 'jig-runner', 'dhcp-db', 'dns-db', 'provisioner', 'gateway'],
    {
      CROWBAR_ANNEAL_PASS_MS: '200',
      CROWBAR_ADMIN_CIDR: '198.18.107.0/24',
      CROWBAR_DHCP_INTERFACES: bridge.name,
      CROWBAR_HTTP_HOST: '0.0.0.0',
      CROWBAR_HTTP_PORT: String(apiPort),
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
    },
  );
  await until(
    'dhcp-db serving the bridge with the provisioner boot map',
    async () => {
      const s = (await stack.call('GET', '/dhcp/stats')).body;
      return s.interfaces?.[0]?.listening && s.bootMap?.source === 'provisioner';
    },
    30_000,
  );
}, 600_000);

afterAll(async () => {
  await Promise.all(vms.map((v) => v.kill()));
  bridge?.cleanup();
  await stack?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('PXE boot into discovery', () => {
  it('BIOS and UEFI VMs boot the discovery image, register with facts and host key, and the annealer logs in', async () => {
    const started = Date.now();
    const boot = (firmware: 'bios' | 'uefi') => {
      const vm = bootVm({ bridge, firmware, mac: macs[firmware], memoryMb: 1024, noReboot: true });
      vms.push(vm);
      return vm;
    };
    const [bios, uefi] = [boot('bios'), boot('uefi')];
    const registered = async (firmware: 'bios' | 'uefi', vm: Vm) => {
      await vm.waitFor(/crowbar-agent: registered as node/, 150_000);
      const node = await until(
        `${firmware} node in the API`,
        async () => {
          const r = await stack.call('GET', `/nodes/${nodeName(macs[firmware])}`);
          return r.status === 200 && r.body.sshHostKey ? r.body : null;
        },
        10_000,
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(`[discovery] ${firmware}: power-on → registered in ${seconds} s\n`);
      return node;
    };
    const [nb, nu] = await Promise.all([registered('bios', bios), registered('uefi', uefi)]);

    for (const [n, vm, mac] of [
      [nb, bios, macs.bios],
      [nu, uefi, macs.uefi],
    ] as const) {
      expect(n).toMatchObject({ available: false, bootenv: 'sledgehammer' });
      expect(n.sshHostKey).toMatch(/^ssh-ed25519 /);
      expect(n.discovery.macs).toContain(mac);
      expect(n.discovery.facts.cpus).toBeGreaterThanOrEqual(1);
      expect(n.discovery.facts.memoryMb ?? n.discovery.facts.memory_mb).toBeGreaterThan(200);
      // What the firmware and the image fetched is on the node's timeline.
      const ev = (await stack.call('GET', `/nodes/${n.id}/boot_events`)).body.map(
        (e: { file: string }) => e.file,
      );
      expect(ev).toEqual(
        expect.arrayContaining([
          `/boot/${mac.replaceAll(':', '-')}.ipxe`,
          '/discovery/vmlinuz',
          '/discovery/initrd.img',
        ]),
      );
      expect(vm.serial()).toContain(`/boot/${mac.replaceAll(':', '-')}.ipxe`);
    }

    // Committed, the discovery roles run over SSH with the cluster key against the pinned host key.
    for (const n of [nb, nu]) expect((await stack.call('PUT', `/nodes/${n.id}/commit`)).status).toBe(200);
    for (const n of [nb, nu]) {
      const access = await until(
        `${n.name} crowbar-access active`,
        async () => {
          const r = await stack.call('GET', `/nodes/${n.id}/node_roles/crowbar-access`);
          if (r.body.state === 'error')
            throw new Error(`crowbar-access failed on ${n.name}: ${r.body.runlog}`);
          return r.body.state === 'active' ? r.body : null;
        },
        120_000,
      );
      expect(access.wall.crowbar_wall.access.configured).toBe(true);
      const managed = await until(
        `${n.name} crowbar-managed-node active`,
        async () => {
          const r = await stack.call('GET', `/nodes/${n.id}/node_roles/crowbar-managed-node`);
          return r.body.state === 'active' ? r.body : null;
        },
        60_000,
      ).catch(async (err: Error) => {
        const all = (await stack.call('GET', `/node_roles`)).body.noderoles;
        const states = all.map(
          (r: { role: string; node: string; state: string }) => `${r.node}:${r.role}=${r.state}`,
        );
        throw new Error(`${err.message}; noderoles: ${states.join(', ')}`);
      });
      expect(managed.state).toBe('active');
    }
    process.stdout.write(
      `[discovery] both nodes managed after ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    expect(readFileSync(join(dir, 'cluster.pub'), 'utf8')).toMatch(/^ssh-ed25519 /);
  }, 400_000);
});
