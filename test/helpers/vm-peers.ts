import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { DebianProgram } from '../../infra/packages.js';
import type { VmBridge } from './vm.js';

/**
 * Real peers for the VM tests on a VM bridge: dnsmasq (DHCP, or IPv6 router advertisements only) and
 * an OpenSSH key pair, plus an HTTP server listening on the bridge.
 */

export const dnsmasqProgram: DebianProgram = { candidates: ['/usr/sbin/dnsmasq'], pkg: 'dnsmasq-base' };
export const sshKeygenProgram: DebianProgram = { candidates: ['/usr/bin/ssh-keygen'], pkg: 'openssh-client' };

export interface Dnsmasq {
  child: ChildProcess;
  /** SIGKILL, resolving once it is gone; call it before the bridge goes (dnsmasq complains otherwise). */
  stop(): Promise<void>;
}

/**
 * dnsmasq on `bridge` only, with no DNS, ended with us (parent-death signal). With `dhcp`: DHCPv4 for
 * `first`..`last` of the bridge's subnet (10 min leases), resolving once it logged its DHCP range.
 * With `routerAdvertisements`: a random ULA /64 is put on the bridge and dnsmasq sends router
 * advertisements for it and nothing else (router lifetime 0: nobody takes the bridge as a default
 * router), resolving once advertising; iPXE's IPv6 configurator then ends at the first advertisement
 * instead of after ~16 s of solicitations. `extra` is appended to the arguments.
 */
export function startDnsmasq(opts: {
  bridge: VmBridge;
  dhcp?: { first: number; last: number; leaseFile: string };
  routerAdvertisements?: boolean;
  extra?: string[];
  program?: string;
}): Promise<Dnsmasq> {
  const ifname = opts.bridge.name;
  const mode: string[] = [];
  if (opts.dhcp) {
    const base = opts.bridge.address.split('.').slice(0, 3).join('.');
    const { first, last, leaseFile } = opts.dhcp;
    mode.push(
      `--dhcp-range=${base}.${first},${base}.${last},${maskOf(opts.bridge.prefix)},10m`,
      `--dhcp-leasefile=${leaseFile}`,
    );
  }
  if (opts.routerAdvertisements) {
    const id = randomBytes(5).toString('hex');
    const ula = `fd${id.slice(0, 2)}:${id.slice(2, 6)}:${id.slice(6, 10)}::1/64`;
    execFileSync('ip', ['-6', 'addr', 'add', ula, 'dev', ifname, 'nodad'], {
      stdio: 'pipe',
      timeout: 10_000,
    });
    mode.push(
      '--enable-ra',
      `--dhcp-range=::,constructor:${ifname},ra-only`,
      `--ra-param=${ifname},60,0`,
      ...(opts.dhcp ? [] : ['--leasefile-ro']),
    );
  }
  if (mode.length === 0) throw new Error('startDnsmasq needs dhcp or routerAdvertisements');
  const ready = opts.dhcp ? 'DHCP, IP range' : 'IPv6 router advertisement enabled';
  const args = [
    '--keep-in-foreground',
    // Stay root:root: changing user or group clears the parent-death signal that ends dnsmasq with us.
    '--user=root',
    '--group=root',
    '--conf-file=/dev/null',
    '--port=0',
    '--no-resolv',
    '--no-hosts',
    `--interface=${ifname}`,
    '--bind-interfaces',
    '--except-interface=lo',
    ...mode,
    '--pid-file=',
    '--log-facility=-',
    ...(opts.extra ?? []),
  ];
  const program = opts.program ?? dnsmasqProgram.candidates[0]!;
  const child = spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', program, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stop = async () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGKILL');
    await gone;
  };
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dnsmasq did not log "${ready}" within 10 s: ${stderr}`));
    }, 10_000);
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-20_000);
      if (stderr.includes(ready)) {
        clearTimeout(timer);
        resolve({ child, stop });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dnsmasq exited with ${code}: ${stderr}`));
    });
  });
}

const maskOf = (prefix: number) => {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
};

export interface KeyPair {
  /** The private key's path; the public key is next to it with `.pub`. */
  path: string;
  privateKey: string;
  publicKey: string;
}

/** An ed25519 key pair without passphrase made by ssh-keygen as `dir`/`name` (and `.pub`). */
export function makeKeyPair(dir: string, name = 'id_ed25519', comment = 'crowbar-test'): KeyPair {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  return { path, privateKey: readFileSync(path, 'utf8'), publicKey: readFileSync(`${path}.pub`, 'utf8') };
}

/** Listens on `address` (`port` 0: any free one); resolves with the server's base URL. */
export async function listenHttp(server: Server, address: string, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, resolve);
  });
  return `http://${address}:${(server.address() as AddressInfo).port}`;
}
