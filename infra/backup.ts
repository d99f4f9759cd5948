/**
 * `npm run backup -- --out <dir>` and `npm run restore -- --from <dir>` (README "Backup and restore"):
 * the database the services use (pg_dump of every schema, one consistent snapshot) and the state dir's
 * secrets. JetStream is not part of it: its streams are work queues and event logs that the services
 * recreate at start, and everything they act on is re-derived from PostgreSQL.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { version } from '../shared/version.js';
import { ensureDebianProgram } from './packages.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`[backup] ${line}\n`);

/** What went wrong, in one sentence for the operator (no stack trace). */
class BackupError extends Error {}

/** The state dir's files a restored installation needs: tokens, the discovery secret, keys, TLS. */
const stateFiles = [
  'operator-token',
  'discovery-secret',
  'ssh/id_ed25519',
  'ssh/id_ed25519.pub',
  'tls/gateway.crt',
  'tls/gateway.key',
];

interface Manifest {
  format: 1;
  createdAt: string;
  crowbarVersion: string;
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
  schemas: string[];
  stateFiles: string[];
}

/** The URL without its password (which goes to libpq through PGPASSWORD, not the process list). */
function connection(url: string): {
  dbname: string;
  env: Record<string, string>;
  database: string;
  shown: string;
} {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  return {
    dbname: u.toString(),
    env: password ? { PGPASSWORD: password } : {},
    database,
    shown: u.toString(),
  };
}

function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url)
    throw new BackupError(
      "DATABASE_URL is not set: set it to the services' database; for npm start's embedded PostgreSQL, stop npm start and copy its state dir instead (it holds the data, the secrets and the NATS store)",
    );
  if (!/^postgres(ql)?:\/\/\S+$/.test(url))
    throw new BackupError('DATABASE_URL must be a postgres:// URL such as postgres://user@host:5432/crowbar');
  return url;
}

/** The server's major version and the schemas in the database (not PostgreSQL's own). */
async function inspect(url: string): Promise<{ major: number; version: string; schemas: string[] }> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const v = await c.query<{ server_version_num: string; server_version: string }>(
      `select current_setting('server_version_num') as server_version_num, current_setting('server_version') as server_version`,
    );
    const s = await c.query<{ nspname: string }>(
      `select nspname from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema' and nspname <> 'public' order by 1`,
    );
    const row = v.rows[0]!;
    return {
      major: Math.floor(Number(row.server_version_num) / 10_000),
      version: row.server_version,
      schemas: s.rows.map((r) => r.nspname),
    };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * The newest installed `tool` (pg_dump, pg_restore) and its major version; Debian's postgresql-client
 * is installed when none is. A tool older than the server cannot read it, and says so.
 */
async function pgTool(
  tool: 'pg_dump' | 'pg_restore',
  serverMajor: number,
): Promise<{ bin: string; version: string }> {
  const versioned = () =>
    existsSync('/usr/lib/postgresql')
      ? readdirSync('/usr/lib/postgresql')
          .filter((v) => /^\d+$/.test(v) && existsSync(`/usr/lib/postgresql/${v}/bin/${tool}`))
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => `/usr/lib/postgresql/${v}/bin/${tool}`)
      : [];
  let candidates = [...versioned(), `/usr/bin/${tool}`].filter((c) => existsSync(c));
  if (candidates.length === 0) {
    ensureDebianProgram({
      candidates: [`/usr/bin/${tool}`],
      pkg: 'postgresql-client',
      why: `the backup runs ${tool}`,
      log: say,
    });
    candidates = [...versioned(), `/usr/bin/${tool}`].filter((c) => existsSync(c));
  }
  const bin = candidates[0]!;
  const { stdout } = await run(bin, ['--version']);
  const version = stdout.trim().replace(/^.*\) /, '');
  const major = Number(version.split('.')[0]);
  if (major < serverMajor)
    throw new BackupError(
      `${tool} ${version} cannot read PostgreSQL ${serverMajor}: install postgresql-client-${serverMajor} (PostgreSQL's own packages)`,
    );
  return { bin, version };
}

/** The first line of a failed tool's stderr, for the sentence. */
function toolFailure(err: unknown): string {
  const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
  return stderr.split('\n').find((l) => /error|fatal/i.test(l)) ?? stderr.split('\n')[0] ?? String(err);
}

async function backup(out: string, stateDir: string) {
  const url = databaseUrl();
  const conn = connection(url);
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new BackupError(`${out} is not empty: name a new directory for the backup`);
  const server = await inspect(url).catch((cause: unknown) => {
    if (cause instanceof BackupError) throw cause;
    throw new BackupError(`cannot connect to PostgreSQL at ${conn.shown}: ${(cause as Error).message}`);
  });
  const dump = await pgTool('pg_dump', server.major);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  say(
    `dumping ${conn.database} (PostgreSQL ${server.version}, schemas ${server.schemas.join(', ')}) with pg_dump ${dump.version} …`,
  );
  const started = Date.now();
  try {
    // Custom format: compressed, one snapshot of the whole database, restorable in one transaction.
    await run(
      dump.bin,
      ['--format=custom', `--file=${join(out, 'crowbar.dump')}`, `--dbname=${conn.dbname}`],
      {
        env: { ...process.env, ...conn.env },
        maxBuffer: 16 << 20,
      },
    );
  } catch (err) {
    throw new BackupError(`pg_dump failed: ${toolFailure(err)}`);
  }
  chmodSync(join(out, 'crowbar.dump'), 0o600);
  const copied: string[] = [];
  for (const f of stateFiles) {
    const from = join(stateDir, f);
    if (!existsSync(from)) continue;
    const to = join(out, 'state', f);
    mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
    copyFileSync(from, to);
    chmodSync(to, statSync(from).mode & 0o777);
    copied.push(f);
  }
  const manifest: Manifest = {
    format: 1,
    createdAt: new Date().toISOString(),
    crowbarVersion: version,
    database: conn.database,
    serverVersion: server.version,
    pgDumpVersion: dump.version,
    schemas: server.schemas,
    stateFiles: copied,
  };
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  const size = statSync(join(out, 'crowbar.dump')).size;
  say(`database dumped in ${((Date.now() - started) / 1000).toFixed(1)} s (${(size / 1024).toFixed(0)} KiB)`);
  say(
    copied.length ? `state files: ${copied.join(', ')} (from ${stateDir})` : `no state files in ${stateDir}`,
  );
  say(`backup written to ${out}`);
}

/** Connects to the target database, creating it (on the same server) when it does not exist. */
async function ensureTarget(url: string, database: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000')
      throw new BackupError(
        `cannot connect to PostgreSQL at ${connection(url).shown}: ${(err as Error).message}`,
      );
  } finally {
    await c.end().catch(() => undefined);
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const a = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  try {
    await a.connect();
    await a.query(`create database "${database.replaceAll('"', '""')}"`);
    say(`created the database ${database}`);
  } catch (err) {
    throw new BackupError(
      `the database ${database} does not exist and cannot be created: ${(err as Error).message}`,
    );
  } finally {
    await a.end().catch(() => undefined);
  }
}

async function restore(from: string, stateDir: string) {
  const url = databaseUrl();
  const conn = connection(url);
  const manifestFile = join(from, 'manifest.json');
  if (!existsSync(manifestFile) || !existsSync(join(from, 'crowbar.dump')))
    throw new BackupError(
      `${from} is not a Crowbar backup (no manifest.json and crowbar.dump): name the directory npm run backup wrote`,
    );
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
  await ensureTarget(url, conn.database);
  const server = await inspect(url);
  const present = server.schemas.filter((s) => manifest.schemas.includes(s));
  if (present.length > 0)
    throw new BackupError(
      `the database ${conn.database} already holds ${present.join(', ')}: stop every service, then restore into an empty database (drop it, or name another in DATABASE_URL)`,
    );
  const tool = await pgTool('pg_restore', server.major);
  say(
    `restoring ${manifest.database} of ${manifest.createdAt} into ${conn.database} (PostgreSQL ${server.version}) …`,
  );
  const started = Date.now();
  try {
    // All or nothing: a restore that fails half way leaves the database as empty as it was.
    await run(
      tool.bin,
      ['--exit-on-error', '--single-transaction', `--dbname=${conn.dbname}`, join(from, 'crowbar.dump')],
      {
        env: { ...process.env, ...conn.env },
        maxBuffer: 16 << 20,
      },
    );
  } catch (err) {
    const why = toolFailure(err);
    const hint = /role .* does not exist/.test(why)
      ? ' (create the roles first: infra/deploy/postgres-roles.sql)'
      : '';
    throw new BackupError(`pg_restore failed, nothing was restored: ${why}${hint}`);
  }
  const after = await inspect(url);
  const missing = manifest.schemas.filter((s) => !after.schemas.includes(s));
  if (missing.length > 0) throw new BackupError(`the restore left out the schemas ${missing.join(', ')}`);
  say(
    `database restored in ${((Date.now() - started) / 1000).toFixed(1)} s: schemas ${after.schemas.join(', ')}`,
  );
  for (const f of manifest.stateFiles) {
    const src = join(from, 'state', f);
    const to = join(stateDir, f);
    mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
    if (existsSync(to) && !readFileSync(to).equals(readFileSync(src)))
      say(`replacing ${to} with the backup's`);
    copyFileSync(src, to);
    chmodSync(to, statSync(src).mode & 0o777);
  }
  if (manifest.stateFiles.length)
    say(`state files restored into ${stateDir}: ${manifest.stateFiles.join(', ')}`);
  say(
    'start the services now: they create their NATS streams and consumers again and carry on from the database',
  );
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      from: { type: 'string' },
      'state-dir': { type: 'string' },
    },
  });
  const stateDir = resolve(values['state-dir'] ?? process.env.CROWBAR_STATE_DIR ?? `${root}.state`);
  const [verb] = positionals;
  if (verb === 'backup') {
    if (!values.out) throw new BackupError('name the backup directory: npm run backup -- --out <dir>');
    await backup(resolve(values.out), stateDir);
  } else if (verb === 'restore') {
    if (!values.from) throw new BackupError('name the backup to restore: npm run restore -- --from <dir>');
    await restore(resolve(values.from), stateDir);
  } else throw new BackupError('usage: npm run backup -- --out <dir>, or npm run restore -- --from <dir>');
}

main().catch((err: unknown) => {
  const message =
    err instanceof BackupError ? err.message : `failed: ${err instanceof Error ? err.message : String(err)}`;
  process.stderr.write(`[backup] ${message}\n`);
  process.exit(1);
});
