import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import { until } from './helpers/dhcp-clients.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';
import { bootVm, createVmBridge, ensureVmPrograms, exitWithin, type VmBridge } from './helpers/vm.js';
import { type Dnsmasq, dnsmasqProgram, listenHttp, startDnsmasq } from './helpers/vm-peers.js';

/**
 * dhcp-db against real firmware: QEMU with SeaBIOS and with OVMF, each with QEMU's iPXE NIC ROM, on a
 * bridge that carries the admin node's address. iPXE asks us for an address, gets the URL of its
 * node script (dhcp-db's default boot map: the provisioner's port 8091), fetches it from a small HTTP
 * server standing in for the provisioner, runs it and resets the machine (QEMU exits, -no-reboot).
 * Then the BIOS VM's MAC becomes a node with bootenv `local`: it gets its reserved address and no
 * boot program, so iPXE gives up and SeaBIOS resets.
 *
 * QEMU's iPXE ROM (1.0.0+git-20190125) says "Configuring … ok" only when every configurator is done,
 * and IPv6 router discovery gives up after ~16 s of solicitations when no router answers. dnsmasq
 * (router advertisements only: no DHCP, no DNS, router lifetime 0) answers them on the bridge, so a
 * boot is not 16 s of waiting for IPv6; DHCPv4 is ours alone.
 */

const log = (l: string) => process.stderr.write(`[dhcp-firmware] ${l}\n`);
const server = '198.18.105.10';
const cidr = '198.18.105.0/24';
const router = '198.18.105.1';
const domain = 'fw.test';
/** dhcp-db's default boot map sends iPXE to the provisioner on this port. */
const provisionerPort = 8091;
const macs = { bios: '52:54:00:cb:69:01', uefi: '52:54:00:cb:69:02' } as const;
const platforms = { bios: 'pcbios', uefi: 'efi' } as const;
const bootBudgetMs = 60_000;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const scriptPath = (mac: string) => `/boot/${mac.replaceAll(':', '-')}.ipxe`;
const scriptUrl = (mac: string) => `http://${server}:${provisionerPort}${scriptPath(mac)}`;
const lastOctet = (ip: string) => Number(ip.split('.')[3]);
const leaseLine = new RegExp(
  `net0: (${escapeRe(cidr.replace(/0\/24$/, ''))}\\d+)/255\\.255\\.255\\.0 gw ${escapeRe(router)}`,
);

let bridge: VmBridge | undefined;
let radvd: Dnsmasq | undefined;
let http: Server | undefined;
let t: TestEnv | undefined;
let stack: Stack;
/** Every HTTP request: path, the address it came from, its user agent. */
const requests: { path: string; from: string; agent: string }[] = [];
/** What the first boot of each firmware got, for the later tests. */
const firstBoot: Partial<Record<'bios' | 'uefi', { address: string; ms: number }>> = {};
const timings: string[] = [];

beforeAll(async () => {
  ensureVmPrograms(log);
  ensureDebianPrograms(
    [dnsmasqProgram],
    "the firmware DHCP test answers iPXE's IPv6 router solicitations with dnsmasq",
    log,
  );
  bridge = createVmBridge({ address: server, prefix: 24 });
  const served = bridge;
  radvd = await startDnsmasq({ bridge: served, routerAdvertisements: true });

  http = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push({ path, from: req.socket.remoteAddress ?? '', agent: req.headers['user-agent'] ?? '' });
    const mac = Object.values(macs).find((m) => scriptPath(m) === path);
    if (!mac) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    // The line we look for is never the last one printed: SeaBIOS's console holds back the last
    // characters until more output comes, and the reset loses them.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: iPXE expands these, proving which VM ran it.
    res.end('#!ipxe\necho crowbar-dhcp-ok ${platform} ${net0/mac}\necho rebooting\nreboot\n');
  });
  await listenHttp(http, served.address, provisionerPort);

  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'dhcp-db', 'dns-db', 'gateway'], {
    CROWBAR_ADMIN_CIDR: cidr,
    CROWBAR_DHCP_INTERFACES: served.name,
    CROWBAR_DNS_DOMAIN: domain,
    CROWBAR_DNS_ADDRESS: '127.0.0.1',
    CROWBAR_DNS_PORT: '0',
    CROWBAR_DNS_SERVERS: `127.0.0.1,${server}`,
  });
  // The admin network reaches dhcp-db through network-ipam's events.
  await until('dhcp-db to serve the admin network on the VM bridge', async () => {
    const s = await stack.call('GET', '/dhcp/stats');
    const i = s.body?.interfaces?.find((x: { name: string }) => x.name === served.name);
    return s.status === 200 && i?.listening && i.address === server && s.body.dns.domain === domain;
  });
}, 600_000);

afterAll(async () => {
  if (timings.length) log(`wall time: ${timings.join('; ')}`);
  // Each step runs even if an earlier one failed; the first failure is reported.
  const errors: unknown[] = [];
  const step = async (f: () => unknown) => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  // dnsmasq first: it complains when its interface disappears under it.
  await step(() => radvd?.stop());
  await step(() => bridge?.cleanup());
  await step(
    () =>
      new Promise<void>((resolve, reject) => {
        if (!http) return resolve();
        http.closeAllConnections();
        http.close((e) => (e ? reject(e) : resolve()));
      }),
  );
  await step(() => stack?.stop());
  await step(() => t?.cleanup());
  if (errors.length) throw errors[0];
}, 60_000);

/** A VM boot with a wall-time budget: `left()` is what remains of it. */
function budget() {
  const started = performance.now();
  return {
    left: () => Math.max(1, bootBudgetMs - (performance.now() - started)),
    ms: () => Math.round(performance.now() - started),
  };
}

async function leasesOf(mac: string) {
  const r = await stack.call('GET', `/dhcp/leases?mac=${mac}`);
  expect(r.status).toBe(200);
  return r.body.leases as {
    address: string;
    mac: string;
    state: string;
    nodeId: number | null;
    range: string;
  }[];
}

describe('dhcp-db boots real firmware (QEMU, iPXE ROM)', () => {
  test.concurrent.each(['bios', 'uefi'] as const)(
    '%s: iPXE gets a dhcp-range address and our script URL, runs the script, QEMU exits',
    async (firmware) => {
      const mac = macs[firmware];
      const b = budget();
      const vm = bootVm({ bridge: bridge!, firmware, mac });
      try {
        await vm.waitFor(new RegExp(`Configuring \\(net0 ${mac}\\)`), b.left());
        const askMs = b.ms();
        await vm.waitFor(new RegExp(`Configuring \\(net0 ${mac}\\)[. ]*ok`), b.left());
        const dhcpMs = b.ms();
        const address = (await vm.waitFor(leaseLine, b.left()))[1]!;
        expect(lastOctet(address)).toBeGreaterThanOrEqual(21);
        expect(lastOctet(address)).toBeLessThanOrEqual(80);
        const filename = await vm.waitFor(/^Filename: (.*)\n/m, b.left());
        expect(filename[1]).toBe(scriptUrl(mac));
        await vm.waitFor(new RegExp(`^crowbar-dhcp-ok ${platforms[firmware]} ${mac}\n`, 'm'), b.left());
        expect(await exitWithin(vm, b.left())).toBe(0);
        const ms = b.ms();
        firstBoot[firmware] = { address, ms };
        timings.push(`${firmware}: DHCP ${askMs}-${dhcpMs} ms, exit ${ms} ms`);
        log(`${firmware}: ${address}, power-on DHCP from ${askMs} to ${dhcpMs} ms, QEMU exit ${ms} ms`);
        expect(ms).toBeLessThan(bootBudgetMs);

        expect(requests).toContainEqual({
          path: scriptPath(mac),
          from: address,
          agent: expect.stringMatching(/^iPXE\//),
        });
        const bound = (await leasesOf(mac)).filter((l) => l.state === 'bound');
        expect(bound).toEqual([
          expect.objectContaining({ address, mac, state: 'bound', nodeId: null, range: 'dhcp' }),
        ]);
      } finally {
        await vm.kill();
      }
    },
    bootBudgetMs + 30_000,
  );

  test('the stats counted an offer and an ack for each VM', async () => {
    expect(Object.keys(firstBoot).sort()).toEqual(['bios', 'uefi']);
    const s = await stack.call('GET', '/dhcp/stats');
    expect(s.status).toBe(200);
    expect(s.body.replied.offer).toBeGreaterThanOrEqual(2);
    expect(s.body.replied.ack).toBeGreaterThanOrEqual(2);
    expect(s.body.replied.nak ?? 0).toBe(0);
    expect(s.body.received).toBeGreaterThanOrEqual(4);
  });

  test(
    'a node with bootenv local: the BIOS VM gets its reserved host address and no boot program',
    async () => {
      const mac = macs.bios;
      const n = await stack.call('POST', '/nodes', { name: `fw1.${domain}`, mac });
      expect(n.status).toBe(201);
      const nodeId: number = n.body.id;
      const alloc = await until('allocation', async () => {
        const r = await stack.call('POST', '/network_allocations', { node: nodeId, network: 'admin' });
        return r.status < 300 ? r : null;
      });
      const hostAddress = /"(198\.18\.105\.\d+)\/24"/.exec(JSON.stringify(alloc.body))?.[1];
      expect(hostAddress).toBeDefined();
      expect(lastOctet(hostAddress!)).toBeGreaterThanOrEqual(81);
      await until('the reservation', async () => {
        const r = await stack.call('GET', `/dhcp/reservations?node=${nodeId}`);
        return r.body[0]?.address === hostAddress;
      });
      expect((await stack.call('PUT', `/nodes/${nodeId}`, { bootenv: 'local' })).status).toBe(200);
      await until('bootenv local in the reservation', async () => {
        const r = await stack.call('GET', `/dhcp/reservations?node=${nodeId}`);
        return r.body[0]?.bootenv === 'local' && r.body[0]?.address === hostAddress;
      });

      const requestsBefore = requests.length;
      const b = budget();
      const vm = bootVm({ bridge: bridge!, firmware: 'bios', mac });
      try {
        await vm.waitFor(new RegExp(`Configuring \\(net0 ${mac}\\)`), b.left());
        const askMs = b.ms();
        await vm.waitFor(new RegExp(`Configuring \\(net0 ${mac}\\)[. ]*ok`), b.left());
        const dhcpMs = b.ms();
        expect((await vm.waitFor(leaseLine, b.left()))[1]).toBe(hostAddress);
        // iPXE's autoboot when DHCP gave neither a filename nor a root path (ENOENT_BOOT; the same
        // text in current iPXE). A filename that cannot be fetched prints the URL and its error.
        await vm.waitFor(
          /^Nothing to boot: No such file or directory \(https?:\/\/ipxe\.org\/2d03e13b\)/m,
          b.left(),
        );
        // SeaBIOS finds nothing else to boot and resets (reboot-timeout=0), so QEMU exits.
        expect(await exitWithin(vm, b.left())).toBe(0);
        const ms = b.ms();
        timings.push(`bios bootenv local: DHCP ${askMs}-${dhcpMs} ms, exit ${ms} ms`);
        log(
          `bios bootenv local: ${hostAddress}, power-on DHCP from ${askMs} to ${dhcpMs} ms, QEMU exit ${ms} ms`,
        );
        expect(ms).toBeLessThan(bootBudgetMs);
        expect(vm.serial()).not.toMatch(/^Filename:/m);
        expect(vm.serial()).not.toMatch(/^Next server:/m);
        // QEMU is gone: nothing more can come from this boot.
        expect(requests.slice(requestsBefore)).toEqual([]);

        const leases = await leasesOf(mac);
        expect(leases.find((l) => l.address === hostAddress)).toMatchObject({
          mac,
          state: 'bound',
          nodeId,
          range: 'host',
        });
      } finally {
        await vm.kill();
      }
    },
    bootBudgetMs + 60_000,
  );
});
