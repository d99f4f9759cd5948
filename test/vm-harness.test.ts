import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import {
  bootVm,
  createVmBridge,
  ensureVmPrograms,
  exitWithin,
  type VmBridge,
  VmWaitError,
} from './helpers/vm.js';
import { type Dnsmasq, dnsmasqProgram, listenHttp, startDnsmasq } from './helpers/vm-peers.js';

/**
 * Proves the VM harness against a real DHCP peer (dnsmasq) and a real HTTP server: QEMU's own iPXE
 * ROM asks for an address, is handed our script's URL, fetches it, runs it and resets the machine,
 * which (with -no-reboot) ends QEMU. The Debian iPXE build has no `poweroff`; `reboot` is the exit.
 */

const log = (l: string) => process.stderr.write(`[vm-harness] ${l}\n`);
const subnet = { address: '198.18.104.1', prefix: 26, mask: '255.255.255.192', first: 10, last: 60 };
const macs = { bios: '52:54:00:cb:68:01', uefi: '52:54:00:cb:68:02', wrongUrl: '52:54:00:cb:68:03' };
const platforms = { bios: 'pcbios', uefi: 'efi' } as const;
const bootBudgetMs = 60_000;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let bridge: VmBridge;
let http: Server;
let dnsmasq: Dnsmasq | undefined;
let dir: string;
let baseUrl: string;
/** Every HTTP request: path and the address it came from. */
const requests: { path: string; from: string; agent: string }[] = [];

beforeAll(async () => {
  ensureVmPrograms(log);
  ensureDebianPrograms([dnsmasqProgram], 'the VM harness test uses dnsmasq as the DHCP peer', log);
  dir = mkdtempSync(`${tmpdir()}/crowbar-vm-harness-`);
  bridge = createVmBridge({ address: subnet.address, prefix: subnet.prefix });

  http = createServer((req, res) => {
    requests.push({
      path: req.url ?? '',
      from: req.socket.remoteAddress ?? '',
      agent: req.headers['user-agent'] ?? '',
    });
    if (req.url !== '/boot.ipxe') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    // SeaBIOS's serial console holds back the last characters until more output comes, and a reset
    // loses them: the line we look for is never the last one printed.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: iPXE expands these, proving which VM ran it.
    res.end('#!ipxe\necho crowbar-harness-ok ${platform} ${net0/mac}\necho rebooting\nreboot\n');
  });
  baseUrl = await listenHttp(http, bridge.address);

  dnsmasq = await startDnsmasq({
    bridge,
    dhcp: { first: subnet.first, last: subnet.last, leaseFile: `${dir}/leases` },
    extra: [
      '--log-dhcp',
      '--dhcp-userclass=set:ipxe,iPXE',
      `--dhcp-host=${macs.wrongUrl},set:wrongurl`,
      `--dhcp-boot=tag:ipxe,tag:!wrongurl,${baseUrl}/boot.ipxe`,
      `--dhcp-boot=tag:ipxe,tag:wrongurl,${baseUrl}/missing.ipxe`,
    ],
  });
}, 600_000);

afterAll(async () => {
  // dnsmasq first: it complains when its interface disappears under it.
  await dnsmasq?.stop();
  bridge?.cleanup();
  await new Promise((r) => (http ? http.close(r) : r(undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('real-firmware QEMU VMs on a test-owned bridge', () => {
  test.concurrent.each(['bios', 'uefi'] as const)(
    '%s: iPXE gets our URL by DHCP, runs our script, and QEMU exits',
    async (firmware) => {
      const mac = macs[firmware];
      const started = performance.now();
      const left = () => Math.max(1, bootBudgetMs - (performance.now() - started));
      const vm = bootVm({ bridge, firmware, mac });
      try {
        await vm.waitFor(new RegExp(`Configuring \\(net0 ${mac}\\)[. ]*ok`), left());
        const lease = await vm.waitFor(
          new RegExp(
            `net0: (${escapeRe(subnet.address.replace(/\d+$/, ''))}\\d+)/${subnet.mask} gw ${subnet.address}`,
          ),
          left(),
        );
        await vm.waitFor(new RegExp(`Filename: ${escapeRe(`${baseUrl}/boot.ipxe`)}\n`), left());
        await vm.waitFor(new RegExp(`^crowbar-harness-ok ${platforms[firmware]} ${mac}$`, 'm'), left());
        expect(await exitWithin(vm, left())).toBe(0);
        const ms = Math.round(performance.now() - started);
        log(`${firmware}: power-on to QEMU exit ${ms} ms`);
        expect(ms).toBeLessThan(bootBudgetMs);
        expect(requests).toContainEqual({
          path: '/boot.ipxe',
          from: lease[1],
          agent: expect.stringMatching(/^iPXE\//),
        });
      } finally {
        await vm.kill();
      }
    },
    bootBudgetMs + 30_000,
  );

  test.concurrent(
    'a wrong boot URL fails waitFor with the console tail',
    async () => {
      const vm = bootVm({ bridge, firmware: 'bios', mac: macs.wrongUrl });
      try {
        const err = await vm.waitFor(/crowbar-harness-ok/, bootBudgetMs).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(VmWaitError);
        // SeaBIOS resets once nothing booted (reboot-timeout=0), so QEMU exits rather than waiting.
        expect((err as VmWaitError).reason).toBe('exited');
        expect((err as VmWaitError).message).toContain(`Filename: ${baseUrl}/missing.ipxe`);
        expect((err as VmWaitError).tail).toMatch(/No such file or directory|Error 0x/);
      } finally {
        await vm.kill();
      }
    },
    bootBudgetMs + 30_000,
  );

  test.concurrent('QEMU failing to start rejects waitFor with its stderr', async () => {
    const vm = bootVm({
      bridge,
      firmware: 'bios',
      mac: '52:54:00:cb:68:04',
      disk: `${dir}/no-such-disk.img`,
    });
    const err = await vm.waitFor(/iPXE/, 20_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmWaitError);
    expect((err as VmWaitError).reason).toBe('exited');
    expect((err as VmWaitError).message).toContain('no-such-disk.img');
    expect(await vm.exited).not.toBe(0);
  });
});
