import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { isDatabaseUnavailable, UnavailableError } from '../errors.js';

// Ids are bigserial (int8); within 2^53 they are exact as JS numbers, which every schema here relies on.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export type Db = NodePgDatabase<Record<string, never>>;

export interface Database {
  pool: pg.Pool;
  db: Db;
  close(): Promise<void>;
}

/** A pool and its drizzle handle. Callers own it and close it. */
export function openDatabase(url: string, opts: { max?: number; applicationName?: string } = {}): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'crowbar',
    connectionTimeoutMillis: 10_000,
  });
  // An idle client that loses its server must not take the process down.
  pool.on('error', () => undefined);
  // Nor one checked out but between queries (a transaction PostgreSQL ended for idling, a restart):
  // the next query on it fails instead, and the pool drops it when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = drizzle(pool);
  // drizzle sends BEGIN before its own try/finally, so a BEGIN that fails on a connection that broke (a
  // database restart) never gives its client back and the pool shrinks by one for good. Transactions
  // take their client here instead, and a broken one is destroyed rather than returned.
  db.transaction = (async (fn, config) => {
    const client = await pool.connect();
    let broken = false;
    try {
      return await drizzle(client).transaction(fn, config);
    } catch (err) {
      broken = isDatabaseUnavailable(err);
      throw err;
    } finally {
      client.release(broken);
    }
  }) as Db['transaction'];
  return { pool, db, close: () => pool.end() };
}

/** Fails with one sentence when PostgreSQL cannot be reached. */
export async function checkReachable(db: Database, url: string): Promise<void> {
  try {
    await db.pool.query('select 1');
  } catch (cause) {
    throw new UnavailableError(`cannot reach PostgreSQL at ${redactUrl(url)}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

export const redactUrl = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

/**
 * Applies one service's drizzle-kit migrations to its own schema. The journal lives in that schema, and
 * an advisory lock per schema lets several instances of a service start at once.
 */
export async function migrateSchema(url: string, schema: string, migrationsFolder: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: `crowbar-migrate-${schema}` });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [`crowbar-migrate:${schema}`]);
    await migrate(drizzle(client), {
      migrationsFolder,
      migrationsSchema: schema,
      migrationsTable: '__migrations',
    });
  } finally {
    await client
      .query('select pg_advisory_unlock(hashtext($1))', [`crowbar-migrate:${schema}`])
      .catch(() => undefined);
    await client.end();
  }
}
