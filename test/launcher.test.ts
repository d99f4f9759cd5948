/**
 * `npm start` end to end: the real launcher with embedded PostgreSQL and its own nats-server (NATS_URL
 * and DATABASE_URL removed), every service as a child process. Checks it comes up, restarts a killed
 * service, and leaves no process behind on Ctrl-C. Processes are tracked by pid + start time from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const serviceCount = 9;

interface Proc {
  pid: number;
  ppid: number;
  /** Clock ticks since boot; with the pid it names one process even if the pid is reused. */
  start: string;
  cmd: string;
}

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may contain spaces; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z') return null;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    return { pid, ppid: Number(rest[1]), start: rest[19] ?? '', cmd };
  } catch {
    return null;
  }
}

/** Every live descendant of `pid` (children, grandchildren …). */
function descendants(pid: number): Proc[] {
  const all = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is Proc => p !== null);
  const out: Proc[] = [];
  let frontier = [pid];
  for (let depth = 0; depth < 10 && frontier.length; depth++) {
    const next = all.filter((p) => frontier.includes(p.ppid));
    out.push(...next);
    frontier = next.map((p) => p.pid);
  }
  return out;
}

const stillRunning = (p: Proc) => readProc(p.pid)?.start === p.start;

async function until<T>(what: string, f: () => Promise<T | null | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Health {
  up: number;
  total: number;
  services: { service: string; status: string; instance?: string }[];
}

interface Launcher {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  health(): Promise<Health | null>;
}

const seen = new Map<number, Proc>();
const launchers: Launcher[] = [];
let stateDir: string;

/** Starts `npm start`'s entry the way a terminal would, in its own process group. */
async function launch(extraArgs: string[]): Promise<Launcher> {
  const port = await pickPort(0);
  const env: Record<string, string | undefined> = {
    ...process.env,
    CROWBAR_HTTP_PORT: String(port),
    CROWBAR_HTTP_HOST: '127.0.0.1',
    // Other test files serve boot files on their own addresses; this one takes free ports.
    CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
    CROWBAR_TFTP_PORT: '0',
  };
  for (const k of ['NATS_URL', 'DATABASE_URL', 'CROWBAR_STATE_DIR', 'CROWBAR_ADMIN_TOKEN', 'CROWBAR_SSH_KEY'])
    delete env[k];
  const proc = spawn(
    process.execPath,
    ['infra/bootstrap.mjs', 'launcher.ts', '--state-dir', stateDir, ...extraArgs],
    {
      cwd: root,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const l: Launcher = {
    proc,
    output: () => out,
    exited,
    async health() {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/api/v2/health`, {
          signal: AbortSignal.timeout(3000),
        });
        return (await r.json()) as Health;
      } catch {
        return null;
      }
    },
  };
  launchers.push(l);
  return l;
}

/** Remembers every process under the launcher, so cleanup and the final check can find them. */
function track(l: Launcher): Proc[] {
  const ps = descendants(l.proc.pid ?? -1);
  for (const p of ps) seen.set(p.pid, p);
  return ps;
}

/** The last lines of a service's log in the state dir, for failure messages. */
function logTail(service: string, lines = 5): string {
  try {
    const text = readFileSync(`${stateDir}/logs/${service}.log`, 'utf8').trimEnd().split('\n');
    return text
      .slice(-lines)
      .map((l) => `  ${l.slice(0, 400)}`)
      .join('\n');
  } catch {
    return '  (no log)';
  }
}

async function allHealthy(l: Launcher, ms: number): Promise<Health> {
  let last: Health | null = null;
  try {
    return await until(
      `${serviceCount}/${serviceCount} healthy`,
      async () => {
        if (l.proc.exitCode !== null) throw new Error(`launcher exited early:\n${l.output()}`);
        last = await l.health();
        track(l);
        return last && last.up === serviceCount && last.total === serviceCount ? last : null;
      },
      ms,
    );
  } catch (err) {
    const down =
      (last as Health | null)?.services.filter((s) => s.status !== 'up').map((s) => s.service) ?? [];
    const logs = down.map((s) => `${s}:\n${logTail(s)}`).join('\n');
    throw new Error(`${(err as Error).message}; down: ${down.join(', ') || '?'}\n${l.output()}\n${logs}`);
  }
}

/** Sends SIGINT (to the whole group, as a terminal's Ctrl-C does, or to the launcher alone). */
async function interrupt(l: Launcher, group: boolean): Promise<number | null> {
  track(l);
  process.kill(group ? -(l.proc.pid ?? 0) : (l.proc.pid ?? 0), 'SIGINT');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref());
  const code = await Promise.race([l.exited, timeout]);
  if (code === 'timeout') throw new Error(`launcher did not exit within 30 s:\n${l.output()}`);
  return code;
}

beforeAll(() => {
  stateDir = mkdtempSync(`${tmpdir()}/crowbar-launcher-test-`);
});

afterAll(async () => {
  // Whatever happened, leave nothing running: the launchers, then everything they started.
  for (const l of launchers)
    if (l.proc.exitCode === null && l.proc.signalCode === null) l.proc.kill('SIGKILL');
  for (const p of seen.values()) if (stillRunning(p)) process.kill(p.pid, 'SIGKILL');
  await until('leftovers gone', async () => ![...seen.values()].some(stillRunning), 10_000).catch(
    () => undefined,
  );
  rmSync(stateDir, { recursive: true, force: true });
});

describe('npm start (launcher)', () => {
  let l: Launcher;

  it('comes up on embedded PostgreSQL and its own nats-server with every service healthy', async () => {
    const t0 = Date.now();
    l = await launch([]);
    const h = await allHealthy(l, 60_000);
    const secs = (Date.now() - t0) / 1000;
    process.stdout.write(`launcher: ${serviceCount}/${serviceCount} healthy after ${secs.toFixed(1)} s\n`);
    expect(h.services.map((s) => s.service).sort()).toHaveLength(serviceCount);
    const out = l.output();
    // Its own servers, never the machine's default ports.
    const nats = /nats-server \(JetStream\) at nats:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    const pg = /embedded PostgreSQL at postgres:\/\/\S+:(\d+)\//.exec(out);
    expect(nats?.[1]).toBeDefined();
    expect(pg?.[1]).toBeDefined();
    expect(nats?.[1]).not.toBe('4222');
    expect(pg?.[1]).not.toBe('5432');
    const procs = track(l);
    expect(procs.some((p) => p.cmd.includes('nats-server'))).toBe(true);
    expect(procs.some((p) => /\/postgres\s+-D/.test(p.cmd))).toBe(true);
    // The cluster SSH key: created once, private, never printed.
    const key = `${stateDir}/ssh/id_ed25519`;
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const privateKey = readFileSync(key, 'utf8');
    expect(privateKey).toMatch(/BEGIN OPENSSH PRIVATE KEY/);
    expect(out).not.toContain(privateKey.split('\n')[1]);
    expect(readFileSync(`${key}.pub`, 'utf8')).toMatch(/^ssh-ed25519 /);
  }, 90_000);

  it('restarts a service whose process is killed with -9, and health returns to 9/9', async () => {
    const victim = 'dhcp-db';
    const before = (await l.health())?.services.find((s) => s.service === victim)?.instance;
    const child = track(l).find(
      (p) => p.ppid === l.proc.pid && p.cmd.includes(`services/${victim}/index.ts`),
    );
    expect(child, 'the service runs as a child of the launcher').toBeDefined();
    process.kill(child!.pid, 'SIGKILL');
    await until('the killed process to be gone', async () => !stillRunning(child!), 5000);
    const h = await until(
      `${victim} restarted and all healthy`,
      async () => {
        const h = await l.health();
        track(l);
        const now = h?.services.find((s) => s.service === victim)?.instance;
        return h && h.up === serviceCount && now && now !== before ? h : null;
      },
      60_000,
    );
    expect(h.up).toBe(serviceCount);
    expect(l.output()).toMatch(new RegExp(`${victim} exited \\(SIGKILL\\); restarting`));
    const again = track(l).find(
      (p) => p.ppid === l.proc.pid && p.cmd.includes(`services/${victim}/index.ts`),
    );
    expect(again?.pid).not.toBe(child!.pid);
  }, 90_000);

  it('stops everything it started on Ctrl-C and exits 0', async () => {
    const started = track(l);
    expect(started.length).toBeGreaterThanOrEqual(serviceCount + 2);
    const code = await interrupt(l, true);
    expect(code, l.output()).toBe(0);
    // Services stop before the database and NATS go away, so none of them crashes on the way out.
    const shutdownOutput = l.output().slice(l.output().indexOf('stopping (SIGINT)'));
    expect(shutdownOutput).not.toMatch(/Unhandled 'error' event|Node\.js v\d+/);
    const left = await until(
      'every started process to be gone',
      async () => ([...seen.values()].some(stillRunning) ? null : []),
      5000,
    ).catch(() => [...seen.values()].filter(stillRunning));
    expect(left.map((p) => `${p.pid} ${p.cmd}`)).toEqual([]);
  }, 60_000);

  it('runs every service in one process with --single, and a SIGINT to the launcher alone stops it all', async () => {
    const single = await launch(['--single']);
    await allHealthy(single, 60_000);
    const procs = track(single);
    // Only the infrastructure (and tsx's esbuild helper) besides the launcher itself.
    expect(procs.filter((p) => p.cmd.includes('services/'))).toEqual([]);
    const code = await interrupt(single, false);
    expect(code, single.output()).toBe(0);
    const left = await until(
      'every started process to be gone',
      async () => (procs.some(stillRunning) ? null : []),
      5000,
    ).catch(() => procs.filter(stillRunning));
    expect(left.map((p) => `${p.pid} ${p.cmd}`)).toEqual([]);
  }, 90_000);
});
