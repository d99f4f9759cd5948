import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDiscoveryImage } from '../../infra/images/discovery.js';
import { ensureOsImage } from '../../infra/images/os.js';
import { pickPort } from '../../infra/ports.js';
import { until } from './dhcp-clients.js';
import { createTestEnv, type TestEnv } from './env.js';
import { type Stack, startStack } from './stack.js';
import { createVmBridge, ensureVmPrograms, type VmBridge } from './vm.js';
import { makeKeyPair } from './vm-peers.js';

/** The control plane a VM installs from: every service on the boot path, on a VM bridge of its own. */
export interface InstallStack {
  t: TestEnv;
  stack: Stack;
  bridge: VmBridge;
  /** Temp dir: the cluster key (`cluster`), the boot root, VM disks. */
  dir: string;
  /** A sparse raw disk of `gib` GiB in `dir`. */
  disk(name: string, gib: number): string;
  /** The node's noderole of `role`, by node name. */
  noderole(
    node: string,
    role: string,
  ): Promise<{ id: number; state: string; runCount: number; runlog?: string }>;
  /** Waits until the node's `role` is ACTIVE with a run count above `after`; throws on ERROR. */
  activeRole(
    node: string,
    role: string,
    ms: number,
    after?: number,
  ): Promise<{ id: number; runCount: number }>;
  stop(): Promise<void>;
}

/** Builds (or reuses) the images, makes the bridge (`server` on a /24 of the VM range) and starts the stack. */
export async function startInstallStack(opts: {
  server: string;
  domain: string;
  /** Outside vitest (benchmarks): where PostgreSQL and NATS are. */
  urls?: { pgAdminUrl: string; natsUrl: string };
  /**
   * TFTP on port 69 of the bridge address, where firmware without iPXE asks (default: a free port, as
   * iPXE ROMs fetch everything over HTTP). Only one test file at a time may take it.
   */
  tftp69?: boolean;
}): Promise<InstallStack> {
  ensureVmPrograms(() => undefined);
  const log = (l: string) => process.stderr.write(`[image] ${l}\n`);
  const image = ensureDiscoveryImage({ log });
  const os = ensureOsImage({ log });
  const dir = mkdtempSync(join(tmpdir(), 'crowbar-inst-'));
  let bridge: VmBridge | undefined;
  let t: TestEnv | undefined;
  try {
    makeKeyPair(dir, 'cluster', 'crowbar-test-cluster');
    bridge = createVmBridge({ address: opts.server, prefix: 24 });
    t = await createTestEnv(opts.urls);
    const stack = await startStack(
      t,
      ['inventory', 'network-ipam', 'annealer', 'jig-runner', 'dhcp-db', 'dns-db', 'provisioner', 'gateway'],
      {
        CROWBAR_ANNEAL_PASS_MS: '200',
        CROWBAR_ADMIN_CIDR: opts.server.replace(/\.\d+$/, '.0/24'),
        CROWBAR_DHCP_INTERFACES: bridge.name,
        CROWBAR_HTTP_HOST: '0.0.0.0',
        CROWBAR_HTTP_PORT: String(await pickPort(0)),
        CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
        CROWBAR_TFTP_PORT: opts.tftp69 ? '69' : '0',
        ...(opts.tftp69 ? { CROWBAR_TFTP_ADDRESS: opts.server } : {}),
        CROWBAR_BOOT_ROOT: join(dir, 'boot'),
        CROWBAR_DISCOVERY_IMAGE: image.dir,
        CROWBAR_OS_IMAGE_DIR: os.dir,
        CROWBAR_DISCOVERY_SECRET: 'test-discovery-secret-0123456789',
        CROWBAR_SSH_KEY: join(dir, 'cluster'),
        CROWBAR_DNS_DOMAIN: opts.domain,
        CROWBAR_DNS_ADDRESS: '127.0.0.1',
        CROWBAR_DNS_PORT: '0',
        CROWBAR_DNS_SERVERS: opts.server,
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
    const noderole = async (node: string, role: string) =>
      (await stack.call('GET', `/nodes/${node}/node_roles/${role}`)).body;
    const b = bridge;
    const env = t;
    return {
      t: env,
      stack,
      bridge: b,
      dir,
      disk(name, gib) {
        const path = join(dir, name);
        const fd = openSync(path, 'w');
        ftruncateSync(fd, gib * 1024 ** 3);
        closeSync(fd);
        return path;
      },
      noderole,
      activeRole: (node, role, ms, after = 0) =>
        until(
          `${role} on ${node} ACTIVE (run count > ${after})`,
          async () => {
            const r = await noderole(node, role);
            if (r.state === 'error') throw new Error(`${role} failed on ${node}: ${r.runlog}`);
            return r.state === 'active' && r.runCount > after ? r : null;
          },
          ms,
        ),
      async stop() {
        b.cleanup();
        await stack.stop();
        await env.cleanup();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    bridge?.cleanup();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
