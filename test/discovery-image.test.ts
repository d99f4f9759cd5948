import { execFile, execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type DiscoveryImage, ensureDiscoveryImage } from '../infra/images/discovery.js';
import { ensureDebianPrograms } from '../infra/packages.js';
import { connectSsh, parsePinnedKey } from '../shared/ssh/index.js';
import { bootVm, createVmBridge, ensureVmPrograms, exitWithin, type VmBridge } from './helpers/vm.js';
import {
  type Dnsmasq,
  dnsmasqProgram,
  listenHttp,
  makeKeyPair,
  sshKeygenProgram,
  startDnsmasq,
} from './helpers/vm-peers.js';

/**
 * Boots the discovery image (Debian's kernel, our initramfs and agent) under QEMU, BIOS and UEFI, with
 * the kernel command line iPXE would give it, against a small HTTP server playing gateway and
 * provisioner and dnsmasq for DHCP. The agent must register with its MACs, host key, address and facts,
 * report alive with the credential it got, accept the cluster key over SSH (and SFTP, as the script
 * jig uses it) presenting the registered host key, and say alive=false when told to power off.
 */

const log = (l: string) => process.stderr.write(`[discovery-image] ${l}\n`);
const subnet = { address: '198.18.106.1', prefix: 24, first: 50, last: 150 };
const macs = { bios: '52:54:00:cb:6a:01', uefi: '52:54:00:cb:6a:02' } as const;
const token = 'cbd1.test.0.discovery';
const credential = 'c-secret';
const nodeIds = { bios: 7, uefi: 8 } as const;
const registerBudgetMs = 120_000;
const diskBytes = 64 * 1024 * 1024;

const nodeName = (mac: string) => `d${mac.replace(/:/g, '-')}.crowbar.test`;

interface Recorded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

let image: DiscoveryImage;
let bridge: VmBridge;
let http: Server;
let dnsmasq: Dnsmasq | undefined;
let dir: string;
let baseUrl: string;
let privateKey: string;
const requests: Recorded[] = [];
/** Resolvers waiting for a request matching a predicate. */
const waiting = new Set<() => void>();

function nextRequest(match: (r: Recorded) => boolean, timeoutMs: number, what: string): Promise<Recorded> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const r = requests.find(match);
      if (!r) return;
      waiting.delete(check);
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      waiting.delete(check);
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    waiting.add(check);
    check();
  });
}

/** Plays the gateway (register, alive) and the provisioner (authorized_keys), recording every request. */
function serve(publicKey: string) {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => {
      body += b.toString();
    });
    req.on('end', () => {
      const r = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        at: performance.now(),
      };
      requests.push(r);
      for (const w of [...waiting]) w();
      const json = (status: number, value: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (r.method === 'GET' && r.path === '/keys/authorized_keys') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(publicKey);
      } else if (r.method === 'POST' && r.path === '/api/v2/node-api/register') {
        if (r.headers.authorization !== `Bearer ${token}`) return json(401, { error: 'bad discovery token' });
        const boot = (JSON.parse(body) as { bootMac?: string }).bootMac;
        const firmware = boot === macs.uefi ? 'uefi' : 'bios';
        json(200, {
          node: { id: nodeIds[firmware], name: nodeName(boot ?? '') },
          credential,
          bootenv: 'sledgehammer',
        });
      } else if (r.method === 'PUT' && /^\/api\/v2\/node-api\/nodes\/\d+\/alive$/.test(r.path)) {
        if (r.headers.authorization !== `Bearer ${credential}`) return json(401, { error: 'bad credential' });
        json(200, { alive: (JSON.parse(body) as { alive: boolean }).alive, changed: true });
      } else json(404, { error: 'not found' });
    });
  });
}

beforeAll(async () => {
  ensureVmPrograms(log);
  ensureDebianPrograms(
    [dnsmasqProgram, sshKeygenProgram],
    'the discovery image test uses dnsmasq for DHCP and the OpenSSH client',
    log,
  );
  image = ensureDiscoveryImage({ log });
  dir = mkdtempSync(`${tmpdir()}/crowbar-discovery-image-`);
  const keys = makeKeyPair(dir);
  privateKey = keys.privateKey;
  bridge = createVmBridge({ address: subnet.address, prefix: subnet.prefix });
  http = serve(keys.publicKey);
  baseUrl = await listenHttp(http, bridge.address);
  dnsmasq = await startDnsmasq({
    bridge,
    dhcp: { first: subnet.first, last: subnet.last, leaseFile: `${dir}/leases` },
  });
}, 900_000);

afterAll(async () => {
  await dnsmasq?.stop();
  bridge?.cleanup();
  await new Promise((r) => (http ? http.close(r) : r(undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the discovery image', () => {
  test('is cached by its inputs: a second ensure reuses the same directory', () => {
    const again = ensureDiscoveryImage();
    expect(again.built).toBe(false);
    expect(again.dir).toBe(image.dir);
    expect(image.manifest.kernelRelease).toMatch(/^6\.1\.0-\d+-amd64$/);
    expect(image.manifest.initrdBytes).toBeLessThan(60e6);
    log(
      `image ${image.dir}: kernel ${image.manifest.kernelBytes} B, initrd ${image.manifest.initrdBytes} B, ${image.manifest.modules} modules`,
    );
  });

  test.concurrent.each(['bios', 'uefi'] as const)(
    '%s: registers, reports alive, serves SSH with the registered host key, says goodbye on poweroff',
    async (firmware) => {
      const mac = macs[firmware];
      const id = nodeIds[firmware];
      const disk = `${dir}/disk-${firmware}.img`;
      closeSync(openSync(disk, 'w'));
      execFileSync('truncate', ['-s', String(diskBytes), disk]);
      const append = [
        'console=ttyS0',
        `crowbar.api=${baseUrl}`,
        `crowbar.token=${token}`,
        `crowbar.provisioner=${baseUrl}`,
        `BOOTIF=01-${mac.replace(/:/g, '-')}`,
      ].join(' ');
      const started = performance.now();
      const vm = bootVm({
        bridge,
        firmware,
        mac,
        disk,
        kernel: image.kernel,
        initrd: image.initrd,
        append,
      });
      try {
        const ofThisVm = (r: Recorded) => r.body.includes(`"bootMac":"${mac}"`);
        const registered = await Promise.race([
          nextRequest(
            (r) => r.path === '/api/v2/node-api/register' && ofThisVm(r),
            registerBudgetMs,
            'registration',
          ),
          vm
            .waitFor(/crowbar-agent: error: .*/, registerBudgetMs)
            .then((m) => Promise.reject(new Error(m[0]))),
        ]);
        log(`${firmware}: power-on to registered ${Math.round(registered.at - started)} ms`);
        expect(registered.headers.authorization).toBe(`Bearer ${token}`);
        const body = JSON.parse(registered.body);
        expect(body.macs).toEqual([mac]);
        expect(body.bootMac).toBe(mac);
        expect(body.hostKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+=*$/);
        expect(parsePinnedKey(body.hostKey).type).toBe('ssh-ed25519');
        const [, address] = /^(198\.18\.106\.\d+)\/24$/.exec(body.address) ?? [];
        expect(address).toBeDefined();
        expect(body.facts).toMatchObject({
          kernel: image.manifest.kernelRelease,
          cpus: expect.any(Number),
          dmi: { vendor: 'QEMU' },
          bmcAddress: null,
        });
        expect(body.facts.cpus).toBeGreaterThanOrEqual(1);
        expect(body.facts.memoryMb).toBeGreaterThan(256);
        expect(body.facts.disks).toContainEqual(
          expect.objectContaining({ name: 'vda', sizeBytes: diskBytes, removable: false }),
        );
        expect(body.facts.nics).toEqual([{ name: 'eth0', mac, driver: 'virtio_net', boot: true }]);

        const alivePath = `/api/v2/node-api/nodes/${id}/alive`;
        // One HTTP exchange after registration, but the agent's answer to register may be lost under TCG
        // on a loaded machine: its client gives up after 30 s and registers again before saying alive.
        const alive = await nextRequest((r) => r.path === alivePath, 90_000, 'alive=true').catch(
          (err: Error) => {
            throw new Error(`${err.message}; console tail:\n${vm.serial().slice(-3000)}`);
          },
        );
        expect(alive.method).toBe('PUT');
        expect(alive.headers.authorization).toBe(`Bearer ${credential}`);
        expect(JSON.parse(alive.body)).toEqual({ alive: true });
        await vm.waitFor(/crowbar-agent: ready/, 30_000);
        log(`${firmware}: power-on to ready ${Math.round(performance.now() - started)} ms`);

        // OpenSSH, knowing only the registered host key, with StrictHostKeyChecking: a different key fails.
        writeFileSync(`${dir}/known_hosts-${firmware}`, `${address} ${body.hostKey}\n`);
        const ssh = await promisify(execFile)(
          'ssh',
          [
            ...['-i', `${dir}/id_ed25519`, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'],
            ...['-o', `UserKnownHostsFile=${dir}/known_hosts-${firmware}`, '-o', 'ConnectTimeout=15'],
            `root@${address}`,
            "/bin/bash -c 'echo ok; uname -r'",
          ],
          { timeout: 30_000 },
        );
        expect(ssh.stdout).toBe(`ok\n${image.manifest.kernelRelease}\n`);

        // What the script jig does: SFTP upload, then /bin/bash, with the host key pinned.
        const session = await connectSsh({
          host: address!,
          privateKey,
          hostKey: body.hostKey,
          timeoutMs: 15_000,
        });
        try {
          await session.putFile('/tmp/probe.sh', 'echo "$1 from $(hostname)"\n', { mode: 0o600 });
          const run = await session.exec('/bin/bash /tmp/probe.sh hello', { timeoutMs: 15_000 });
          expect(run).toMatchObject({ code: 0, stdout: `hello from ${nodeName(mac)}\n` });
          // The connection may drop before an answer: init ends every process on its way down.
          await session.exec('poweroff', { timeoutMs: 10_000 }).catch(() => undefined);
        } finally {
          await session.end().catch(() => undefined);
        }
        const goodbye = await nextRequest(
          (r) => r.path === alivePath && r.body.includes('false'),
          // init's shutdown under TCG on a loaded machine (other VM tests run beside this one).
          90_000,
          'alive=false at poweroff',
        );
        expect(goodbye.headers.authorization).toBe(`Bearer ${credential}`);
        expect(JSON.parse(goodbye.body)).toEqual({ alive: false });
        expect(await exitWithin(vm, 60_000)).toBe(0);
      } finally {
        await vm.kill();
      }
    },
    registerBudgetMs + 180_000,
  );
});
