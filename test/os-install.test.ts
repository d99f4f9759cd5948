import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSsh } from '../shared/ssh/index.js';
import { until } from './helpers/dhcp-clients.js';
import { type InstallStack, startInstallStack } from './helpers/install-stack.js';
import type { Stack } from './helpers/stack.js';
import { bootVm, type Vm } from './helpers/vm.js';

/**
 * The operator's story, step 3 (DESIGN §1; reference §6.5 without the races of §6.6), on real firmware:
 * a SeaBIOS VM with an empty virtual disk PXE-boots into discovery and registers; committed, its
 * discovery roles run over SSH. Then a deployment binds provisioner-os-install to it and commits: the
 * bootenv becomes debian-12-install, the provisioner's run waits for dhcp-db and itself to serve it and
 * reboots the VM into the installer, which partitions the disk, unpacks the Debian image, installs GRUB,
 * sets bootenv local and reboots. The VM boots from its disk (root on /dev/vda1), crowbar-join re-pins
 * its new host key with the node's credential and reports alive, and the annealer re-runs its roles
 * over SSH — the destructive install skipped. dhcp-db is stopped when the bootenv changes: the run waits
 * for it (and says so) instead of rebooting the node into a boot program dhcp-db might still hand out.
 * About 4–5 minutes here (TCG).
 */
const domain = 'inst.test';
const mac = '52:54:00:6c:00:01';
const name = `d${mac.replaceAll(':', '-')}.${domain}`;
let s: InstallStack;
let stack: Stack;
let vm: Vm | undefined;

beforeAll(async () => {
  s = await startInstallStack({ server: '198.18.108.10', domain });
  stack = s.stack;
}, 900_000);

afterAll(async () => {
  await vm?.kill();
  await s?.stop();
});

type Noderole = { id: number; role: string; state: string; runCount: number; runlog?: string };
const noderole = (role: string): Promise<Noderole> => s.noderole(name, role) as Promise<Noderole>;
const activeRole = (role: string, ms: number, after = 0) => s.activeRole(name, role, ms, after);

describe('OS install on real firmware', () => {
  it('discovery → bind provisioner-os-install → commit → install to disk → boot from disk → roles re-run, install skipped', async () => {
    const disk = s.disk('disk.raw', 4);
    const started = Date.now();
    const at = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    vm = bootVm({
      bridge: s.bridge,
      firmware: 'bios',
      mac,
      memoryMb: 1024,
      disk,
      bootOrder: 'nc',
      noReboot: false,
    });

    await vm.waitFor(/crowbar-agent: registered as node/, 150_000);
    const discovered = await until(
      'node registered with its discovery host key',
      async () => {
        const r = await stack.call('GET', `/nodes/${name}`);
        return r.status === 200 && r.body.sshHostKey ? r.body : null;
      },
      10_000,
    );
    expect(discovered.discovery.facts.disks.map((d: { name: string }) => d.name)).toContain('vda');
    expect((await stack.call('PUT', `/nodes/${name}/commit`)).status).toBe(200);
    const access = await activeRole('crowbar-access', 150_000);
    await activeRole('crowbar-managed-node', 60_000);
    process.stdout.write(`[install] discovered and managed after ${at()}\n`);

    // The operator's deployment: provisioner-os-install on the node, committed.
    expect((await stack.call('POST', '/deployments', { name: 'compute', parent: 'system' })).status).toBe(
      201,
    );
    const bound = await stack.call('POST', '/node_roles', {
      node: name,
      role: 'provisioner-os-install',
      deployment: 'compute',
    });
    expect(bound.status, JSON.stringify(bound.body)).toBe(201);
    // The race (DESIGN §4): dhcp-db is down when the bootenv changes. The run must not reboot the node
    // while dhcp-db could still hand it the old boot program; it waits, saying what for.
    await stack.stopService('dhcp-db');
    expect((await stack.call('PUT', '/deployments/compute/commit')).status).toBe(200);
    await until(
      'bootenv debian-12-install',
      async () => (await stack.call('GET', `/nodes/${name}`)).body.bootenv === 'debian-12-install',
      60_000,
    ).catch(async (err: Error) => {
      const all = (await stack.call('GET', `/nodes/${name}/node_roles`)).body.noderoles ?? [];
      const states = all.map(
        (r: Noderole & { deployment: string }) => `${r.role}@${r.deployment}=${r.state}`,
      );
      throw new Error(`${err.message}; noderoles: ${states.join(', ')}`);
    });
    const provisioner = stack.services.get('provisioner')!;
    const waitingFor = await until(
      'the install run waiting for dhcp-db',
      async () => {
        const w = (provisioner.detail() as { installsWaiting: Record<string, { missing: string[] }> })
          .installsWaiting[String(discovered.id)];
        return w?.missing.some((m) => m.startsWith('dhcp-db does not answer')) ? w : null;
      },
      60_000,
    );
    expect(waitingFor.missing.join('; ')).not.toMatch(/provisioner serves/);
    expect(vm.serial().match(/crowbar-agent: starting/g)).toHaveLength(1);
    expect((await noderole('provisioner-os-install')).state).toBe('transition');
    await stack.startService('dhcp-db');

    await vm.waitFor(/crowbar-agent: bootstate debian-12-install: installing/, 180_000);
    process.stdout.write(`[install] installer started after ${at()}\n`);
    await vm.waitFor(/crowbar-agent: installed onto \/dev\/vda/, 300_000);
    await vm.waitFor(/crowbar-agent: bootstate local: rebooting/, 120_000);
    process.stdout.write(`[install] installed after ${at()}\n`);
    await vm.waitFor(/crowbar-join: alive reported/, 300_000);
    process.stdout.write(`[install] installed system up and alive after ${at()}\n`);

    const installed = (await stack.call('GET', `/nodes/${name}`)).body;
    expect(installed).toMatchObject({ alive: true, bootenv: 'local' });
    expect(installed.sshHostKey).toMatch(/^ssh-ed25519 /);
    expect(installed.sshHostKey).not.toBe(discovered.sshHostKey);
    expect(installed.discovery.facts.disks.map((d: { name: string }) => d.name)).toContain('vda');

    // Roles re-run on the installed system; the destructive install is skipped, not run again.
    await activeRole('crowbar-access', 180_000, access.runCount);
    const install = await until(
      'provisioner-os-install re-run as a skip',
      async () => {
        const r = await noderole('provisioner-os-install');
        return r.state === 'active' &&
          /jig skipped|nothing to do: the node runs the system installed/.test(r.runlog ?? '')
          ? r
          : null;
      },
      120_000,
    );
    const runs = (await stack.call('GET', '/runs?all=true')).body.runs as {
      noderoleId: number;
      reason: string | null;
    }[];
    const installRuns = runs.filter((r) => r.noderoleId === install.id);
    expect(installRuns.length, JSON.stringify(installRuns)).toBeGreaterThanOrEqual(2);
    expect(vm.serial().match(/crowbar-agent: bootstate debian-12-install: installing/g)).toHaveLength(1);

    // The root file system is the virtual disk, reached with the cluster key and the re-pinned host key.
    const addr = (await stack.call('GET', `/nodes/${name}/addresses?category=admin`)).body;
    const host = (addr.allocations ?? addr)[0].address.split('/')[0];
    const ssh = await connectSsh({
      host,
      port: 22,
      username: 'root',
      privateKey: readFileSync(join(s.dir, 'cluster'), 'utf8'),
      hostKey: installed.sshHostKey,
      timeoutMs: 15_000,
    });
    try {
      const root = await ssh.exec('findmnt -n -o SOURCE / && . /etc/os-release && echo "$ID $VERSION_ID"', {
        timeoutMs: 15_000,
      });
      expect(root.stdout.trim().split('\n')).toEqual(['/dev/vda1', 'debian 12']);
    } finally {
      await ssh.end();
    }
    process.stdout.write(`[install] full cycle (power-on → installed, alive, roles re-run) in ${at()}\n`);
  }, 900_000);
});
