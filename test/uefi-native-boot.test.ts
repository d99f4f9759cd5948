import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './helpers/dhcp-clients.js';
import { type InstallStack, startInstallStack } from './helpers/install-stack.js';
import { bootVm, type Vm } from './helpers/vm.js';

/**
 * Most servers' UEFI boots with its own network stack, not iPXE: OVMF with no option ROM on its NIC
 * (edk2's own virtio-net driver, PXE and HTTP boot) asks our DHCP as a UEFI client (arch 7), fetches the
 * iPXE EFI loader it is given from our TFTP server (real firmware's TFTP client), and from there the
 * chain is ours: iPXE's DHCP, the boot script over HTTP, the discovery image, registration.
 */
const domain = 'uefi.test';
const mac = '52:54:00:6f:00:01';
const name = `d${mac.replaceAll(':', '-')}.${domain}`;
let s: InstallStack;
let vm: Vm | undefined;

beforeAll(async () => {
  s = await startInstallStack({ server: '198.18.111.10', domain, tftp69: true });
}, 900_000);

afterAll(async () => {
  await vm?.kill();
  await s?.stop();
});

describe('UEFI network boot without iPXE in the NIC', () => {
  it('OVMF loads our iPXE EFI loader over its own PXE (TFTP), which then boots discovery and registers', async () => {
    const started = Date.now();
    vm = bootVm({ bridge: s.bridge, firmware: 'uefi', mac, memoryMb: 1024, nicRom: false, noReboot: true });
    await vm.waitFor(/crowbar-agent: registered as node/, 240_000);
    process.stdout.write(
      `[uefi-native] power-on → registered in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    const node = await until(
      'the node in the API',
      async () => {
        const r = await s.stack.call('GET', `/nodes/${name}`);
        return r.status === 200 && r.body.sshHostKey ? r.body : null;
      },
      10_000,
    );
    const events = (await s.stack.call('GET', `/nodes/${node.id}/boot_events`)).body as {
      file: string;
      transport: string;
      ok: boolean;
    }[];
    // The firmware's own fetch of the loader, then iPXE's script and the image over HTTP.
    expect(
      events.some((e) => e.transport === 'tftp' && /snponly\.efi$/.test(e.file) && e.ok),
      JSON.stringify(events),
    ).toBe(true);
    expect(events.map((e) => e.file)).toEqual(
      expect.arrayContaining([
        `/boot/${mac.replaceAll(':', '-')}.ipxe`,
        '/discovery/vmlinuz',
        '/discovery/initrd.img',
      ]),
    );
  }, 400_000);
});
