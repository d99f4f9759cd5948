import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPrograms } from '../../infra/packages.js';
import { pickPort } from '../../infra/ports.js';

const sshdPath = '/usr/sbin/sshd';

/** A real OpenSSH sshd owned by one test: its own host key, config, authorized_keys and pid file. */
export interface TestSshd {
  host: string;
  port: number;
  /** Current host public key line, `ssh-ed25519 AAAA...`. */
  hostKey: string;
  /** PID of the running listener, or null while stopped. */
  pid(): number | null;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops sshd, makes a new host key, starts again; returns the new public line. */
  rotateHostKey(): Promise<string>;
  /** Stops sshd and removes its directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

export interface SshdOptions {
  /** Public key lines allowed to log in as root (the cluster key). */
  authorizedKeys: string[];
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Default: a free loopback port, or 22 inside a namespace. */
  port?: number;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
}

/** Makes sure a Debian package's program is there (installing it when root), else fails naming the package. */
export function ensureTool(path: string, pkg: string): void {
  ensureDebianPrograms([{ candidates: [path], pkg }], 'the tests run it', () => undefined);
}

/** Installs openssh-server when missing (root only), else fails with one sentence. */
export function ensureSshd(): void {
  ensureTool(sshdPath, 'openssh-server');
}

/** The aliveness probe's ICMP stage runs fping. */
export function ensureFping(): void {
  ensureTool('/usr/bin/fping', 'fping');
}

/**
 * A new ed25519 key pair in `dir` (`name`, `name.pub`; a random name by default); answers the public
 * key as `<type> <base64>`, the form registration pins.
 */
export function newKeyPair(dir: string, name = `k${Math.random().toString(36).slice(2)}`): string {
  const file = join(dir, name);
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test-host', '-f', file], {
    stdio: 'ignore',
  });
  const [type, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
  return `${type} ${b64}`;
}

const makeHostKey = (dir: string) => newKeyPair(dir, 'ssh_host_ed25519_key');

/** Resolves once the server sends its SSH banner, i.e. really accepts connections. */
function bannerSeen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('data', (b) => done(b.toString('latin1').startsWith('SSH-')));
    s.once('error', () => done(false));
    s.connect(port, host);
  });
}

export async function startSshd(opts: SshdOptions): Promise<TestSshd> {
  ensureSshd();
  // sshd insists on its privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (opts.netns ? 22 : await pickPort(0));
  const dir = mkdtempSync(join(tmpdir(), 'crowbar-sshd-'));
  const pidFile = join(dir, 'sshd.pid');
  writeFileSync(join(dir, 'authorized_keys'), `${opts.authorizedKeys.join('\n')}\n`, { mode: 0o600 });
  const config = [
    `Port ${port}`,
    `ListenAddress ${host.includes(':') ? `[${host}]` : host}`,
    `HostKey ${join(dir, 'ssh_host_ed25519_key')}`,
    `PidFile ${pidFile}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'LogLevel ERROR',
    // Benchmarks and sweeps open many logins at once; the default (10:30:100) drops some at random.
    'MaxStartups 200',
    'Subsystem sftp internal-sftp',
  ].join('\n');
  writeFileSync(join(dir, 'sshd_config'), `${config}\n`);
  writeFileSync(join(dir, 'empty-rc'), '');
  let hostKey = makeHostKey(dir);
  let child: ChildProcess | null = null;
  let stderr = '';

  const start = async () => {
    if (child) return;
    // Root's shell config on this machine (pyenv init, which takes a lock file) runs for every SSH
    // command and hangs when a session is killed mid-way; sshd gets a private mount namespace where
    // those files are empty. `unshare` and `sh` exec in place, so the PID we hold is sshd's own.
    const masks = ['/root/.bashrc', '/root/.profile', '/etc/bash.bashrc']
      .filter((f) => existsSync(f))
      .map((f) => `mount --bind ${join(dir, 'empty-rc')} ${f}`)
      .join(' && ');
    const script = `${masks ? `${masks} && ` : ''}exec ${sshdPath} -D -e -f ${join(dir, 'sshd_config')}`;
    const argv = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script];
    const p = opts.netns
      ? spawn('ip', ['netns', 'exec', opts.netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    stderr = '';
    p.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    child = p;
    p.once('exit', () => {
      if (child === p) child = null;
    });
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      if (!child) throw new Error(`sshd exited at start: ${stderr.trim()}`);
      if (await bannerSeen(host, port, 500)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await stop();
    throw new Error(`sshd on ${host}:${port} did not answer within 10 s: ${stderr.trim()}`);
  };

  const stop = async () => {
    const p = child;
    if (!p || p.exitCode !== null) {
      child = null;
      return;
    }
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    child = null;
  };

  await start();
  let cleaned = false;
  const handle: TestSshd = {
    host,
    port,
    get hostKey() {
      return hostKey;
    },
    pid: () => child?.pid ?? null,
    stop,
    start,
    async rotateHostKey() {
      await stop();
      hostKey = makeHostKey(dir);
      await start();
      return hostKey;
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
