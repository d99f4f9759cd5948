import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { isListening, waitFor } from './ports.js';

const candidates = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/**
 * Finds nats-server, installing Debian's package when missing and we are root; otherwise fails with one
 * sentence saying what to install.
 */
export function ensureNatsServer(log: (line: string) => void): string {
  const found = () => candidates.find((c) => existsSync(c));
  let bin = found();
  if (bin) return bin;
  if (process.getuid?.() === 0) {
    log('nats-server is missing; installing the Debian package nats-server …');
    try {
      execFileSync('apt-get', ['install', '-y', 'nats-server'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'ignore' });
      execFileSync('apt-get', ['install', '-y', 'nats-server'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    }
    bin = found();
    if (bin) return bin;
  }
  throw new Error(
    'nats-server is not installed: run `sudo apt-get install nats-server` (or set NATS_URL to a NATS server with JetStream)',
  );
}

export interface NatsServerHandle {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts a private nats-server with JetStream on loopback, its data under `dir`. */
export async function startNatsServer(opts: {
  dir: string;
  port: number;
  log: (l: string) => void;
}): Promise<NatsServerHandle> {
  const bin = ensureNatsServer(opts.log);
  mkdirSync(opts.dir, { recursive: true });
  const child: ChildProcess = spawn(
    bin,
    ['-a', '127.0.0.1', '-p', String(opts.port), '-js', '-sd', opts.dir, '-l', `${opts.dir}/nats-server.log`],
    {
      stdio: 'ignore',
    },
  );
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  await waitFor('nats-server', async () => !exited && (await isListening('127.0.0.1', opts.port)), 15_000);
  return {
    url: `nats://127.0.0.1:${opts.port}`,
    pid: child.pid ?? -1,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
