import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateSchema } from '../shared/db/database.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => t?.cleanup());

const servicesDir = fileURLToPath(new URL('../services/', import.meta.url));
const owners = readdirSync(servicesDir).filter((s) => readdirSync(`${servicesDir}${s}`).includes('db'));

/** Everything a migration could change in a schema, as comparable text. */
async function describeSchema(schema: string): Promise<string> {
  const c = new pg.Client({ connectionString: t.databaseUrl });
  await c.connect();
  try {
    const cols = await c.query(
      `select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns
       where table_schema = $1 order by table_name, column_name`,
      [schema],
    );
    const idx = await c.query(
      `select indexname, indexdef from pg_indexes where schemaname = $1 order by indexname`,
      [schema],
    );
    const mig = await c.query(`select count(*)::int as n from "${schema}".__migrations`);
    return JSON.stringify({ cols: cols.rows, idx: idx.rows, migrations: mig.rows[0] });
  } finally {
    await c.end();
  }
}

describe('migrations', () => {
  it('every service that owns a schema has committed migrations', () => {
    expect(owners.length).toBeGreaterThanOrEqual(7);
  });

  it.each(owners)('%s applies twice without change', async (svc) => {
    const schema = svc.replace(/-/g, '_');
    const folder = `${servicesDir}${svc}/db/migrations`;
    await migrateSchema(t.databaseUrl, schema, folder);
    const first = await describeSchema(schema);
    expect(JSON.parse(first).cols.length).toBeGreaterThan(0);
    // Every service that publishes events does so through its outbox; the gateway's schema holds only
    // tokens and the audit log.
    if (svc !== 'gateway') expect(first).toContain('outbox');
    await migrateSchema(t.databaseUrl, schema, folder);
    expect(await describeSchema(schema)).toBe(first);
  });

  it('several instances migrating at once end in the same schema', async () => {
    const folder = `${servicesDir}annealer/db/migrations`;
    await Promise.all([1, 2, 3].map(() => migrateSchema(t.databaseUrl, 'annealer', folder)));
    expect(await describeSchema('annealer')).toContain('outbox');
  });
});
