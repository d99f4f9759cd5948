/**
 * `npm run bench -- install [--firmware uefi|bios]`
 *
 * The whole install cycle on one real-firmware QEMU VM (TCG; default UEFI: OVMF + iPXE EFI, the cycle the
 * test suite runs on BIOS): power-on → discovery → registered → committed, discovery roles ACTIVE →
 * provisioner-os-install bound in a deployment and committed → installer → installed onto the virtual
 * disk → boots from disk → alive with a re-pinned host key → crowbar-access re-run. Seconds for each step
 * from power-on; an absolute time (software emulation on this machine), with the load average beside it.
 * Root; the bridge is 198.18.109.0/24 inside the VM range.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { benchmarkingRange, ensureBlackholeRoutes } from '../infra/routes.js';
import { benchServices } from '../test/helpers/bench-env.js';
import { until } from '../test/helpers/dhcp-clients.js';
import { startInstallStack } from '../test/helpers/install-stack.js';
import { bootVm } from '../test/helpers/vm.js';

const { values } = parseArgs({ options: { firmware: { type: 'string', default: 'uefi' } } });
const firmware = values.firmware === 'bios' ? 'bios' : values.firmware === 'uefi' ? 'uefi' : null;
if (!firmware) {
  console.error('usage: npm run bench -- install [--firmware uefi|bios]');
  process.exit(1);
}
const say = (l: string) => process.stdout.write(`${l}\n`);
const mac = firmware === 'uefi' ? '52:54:00:6d:00:02' : '52:54:00:6d:00:01';
const domain = 'bench-install.test';
const name = `d${mac.replaceAll(':', '-')}.${domain}`;

ensureBlackholeRoutes([benchmarkingRange, 'fd00::/8']);
const services = await benchServices(say);
const s = await startInstallStack({ server: '198.18.109.10', domain, urls: services });
const vm = bootVm({
  bridge: s.bridge,
  firmware,
  mac,
  memoryMb: 1024,
  disk: s.disk('disk.raw', 4),
  bootOrder: 'nc',
  noReboot: false,
});
const started = Date.now();
const steps: Record<string, number> = {};
const mark = (step: string) => {
  steps[step] = Math.round((Date.now() - started) / 100) / 10;
  say(`[install] ${firmware}: ${step} after ${steps[step]} s`);
};
try {
  await vm.waitFor(/crowbar-agent: registered as node/, 240_000);
  mark('registered');
  const before = await until(
    'the node in the API',
    async () => {
      const r = await s.stack.call('GET', `/nodes/${name}`);
      return r.status === 200 && r.body.sshHostKey ? r.body : null;
    },
    10_000,
  );
  await s.stack.call('PUT', `/nodes/${name}/commit`);
  const access = await s.activeRole(name, 'crowbar-access', 240_000);
  await s.activeRole(name, 'crowbar-managed-node', 120_000);
  mark('managed');
  await s.stack.call('POST', '/deployments', { name: 'compute', parent: 'system' });
  await s.stack.call('POST', '/node_roles', {
    node: name,
    role: 'provisioner-os-install',
    deployment: 'compute',
  });
  await s.stack.call('PUT', '/deployments/compute/commit');
  await vm.waitFor(/crowbar-agent: bootstate debian-12-install: installing/, 300_000);
  mark('installer');
  await vm.waitFor(/crowbar-agent: bootstate local: rebooting/, 600_000);
  mark('installed');
  await vm.waitFor(/crowbar-join: alive reported/, 600_000);
  mark('alive');
  await s.activeRole(name, 'crowbar-access', 300_000, access.runCount);
  mark('roles re-run');
  const after = (await s.stack.call('GET', `/nodes/${name}`)).body;
  if (after.sshHostKey === before.sshHostKey || after.bootenv !== 'local')
    throw new Error(`the node did not come back installed: ${JSON.stringify(after).slice(0, 300)}`);
  say(
    JSON.stringify({
      bench: 'install',
      firmware,
      seconds: steps['roles re-run'],
      steps,
      load: loadavg().map((l) => Math.round(l * 100) / 100),
    }),
  );
} finally {
  await vm.kill();
  await s.stop();
  await services.stop();
}
