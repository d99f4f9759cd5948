import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { ensureDebianProgram } from './packages.js';
import { isListening, processAlive, waitFor, waitForExit } from './ports.js';

const candidates = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** Finds nats-server, installing Debian's package when missing and we are root. */
export function ensureNatsServer(log: (line: string) => void): string {
  return ensureDebianProgram({
    candidates,
    pkg: 'nats-server',
    why: 'or set NATS_URL to a NATS server with JetStream',
    log,
  });
}

export interface NatsServerHandle {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * A nats-server left running by a launcher that was killed outright still holds this data directory;
 * stop it so this start can take over. Only the process recorded in our own pid file is touched, and
 * only if it still is a nats-server.
 */
export async function stopStaleNatsServer(dir: string, log: (l: string) => void) {
  const pidFile = `${dir}/nats-server.pid`;
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid)) return;
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.includes('nats-server') || !cmd.includes(pidFile)) return;
  log(`stopping nats-server left running from an earlier start (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  if (!(await waitForExit(pid, 10_000))) process.kill(pid, 'SIGKILL');
}

/**
 * Starts a private nats-server with JetStream on loopback, its data under `dir`. It runs in its own
 * process group, so a terminal's Ctrl-C reaches the launcher (and its services) but not NATS: the
 * launcher stops NATS itself, after the services have said goodbye over it.
 */
export async function startNatsServer(opts: {
  dir: string;
  port: number;
  log: (l: string) => void;
  /** An `authorization { … }` block (infra/nats-auth.ts); without it any client may do anything. */
  authorization?: string;
}): Promise<NatsServerHandle> {
  const bin = ensureNatsServer(opts.log);
  mkdirSync(opts.dir, { recursive: true });
  const pidFile = `${opts.dir}/nats-server.pid`;
  await stopStaleNatsServer(opts.dir, opts.log);
  const config = `${opts.dir}/nats-server.conf`;
  if (opts.authorization) writeFileSync(config, opts.authorization, { mode: 0o600 });
  const child: ChildProcess = spawn(
    bin,
    [
      ...['-a', '127.0.0.1', '-p', String(opts.port), '-js', '-sd', opts.dir],
      ...['-l', `${opts.dir}/nats-server.log`, '-P', pidFile],
      ...(opts.authorization ? ['-c', config] : []),
    ],
    { stdio: 'ignore', detached: true },
  );
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
  try {
    await waitFor('nats-server', async () => !exited && (await isListening('127.0.0.1', opts.port)), 15_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `nats://127.0.0.1:${opts.port}`, pid: child.pid ?? -1, stop };
}
