import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { upkeepPass } from '../shared/db/upkeep.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';

/**
 * Table upkeep where autovacuum does not run. Tables here switch autovacuum off for themselves, so the
 * test means the same whether or not the server runs autovacuum.
 */
let t: TestEnv;
let pool: pg.Pool;
beforeAll(async () => {
  t = await createTestEnv();
  pool = new pg.Pool({ connectionString: t.databaseUrl, max: 2 });
  await pool.query(`create schema upk;
    create table upk.churn (id int primary key, v int) with (autovacuum_enabled = off);
    create table upk.grown (id int primary key) with (autovacuum_enabled = off);
    create table upk.quiet (id int primary key) with (autovacuum_enabled = off)`);
});
afterAll(async () => {
  await pool?.end();
  await t?.cleanup();
});

interface Stat {
  relname: string;
  dead: number;
  mods: number;
  analyzed: boolean;
  vacuumed: boolean;
}
async function stats(): Promise<Record<string, Stat>> {
  const { rows } =
    await pool.query<Stat>(`select relname, n_dead_tup::int as dead, n_mod_since_analyze::int as mods,
      last_analyze is not null as analyzed, last_vacuum is not null as vacuumed
    from pg_stat_user_tables where schemaname = 'upk'`);
  return Object.fromEntries(rows.map((r) => [r.relname, r]));
}
/** Statistics reach the shared counters a moment after commit; waits (bounded) until `ok` holds. */
async function until(ok: (s: Record<string, Stat>) => boolean): Promise<Record<string, Stat>> {
  const end = Date.now() + 10_000;
  for (;;) {
    const s = await stats();
    if (ok(s) || Date.now() > end) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('vacuums a churned table, analyzes a grown one, leaves a quiet one alone', async () => {
  await pool.query('insert into upk.churn select g, 0 from generate_series(1, 400) g');
  await pool.query('update upk.churn set v = v + 1');
  await pool.query('update upk.churn set v = v + 1');
  await pool.query('insert into upk.grown select g from generate_series(1, 400) g');
  await pool.query('insert into upk.quiet select g from generate_series(1, 10) g');
  const before = await until((s) => s.churn?.dead === 800 && s.grown?.mods === 400 && s.quiet?.mods === 10);
  expect(before.churn?.dead).toBe(800);

  const acts = await upkeepPass(pool, 'upk');
  expect(acts).toEqual([
    { table: 'churn', action: 'vacuum' },
    { table: 'grown', action: 'analyze' },
  ]);
  const after = await until((s) => s.churn?.dead === 0 && !!s.grown?.analyzed);
  expect(after.churn).toMatchObject({ dead: 0, vacuumed: true, analyzed: true });
  expect(after.grown).toMatchObject({ mods: 0, analyzed: true, vacuumed: false });
  expect(after.quiet).toMatchObject({ analyzed: false, vacuumed: false });

  // Nothing changed since: the next pass does nothing.
  expect(await upkeepPass(pool, 'upk')).toEqual([]);
});

it('touches no other schema', async () => {
  await pool.query(`create schema other; create table other.busy (id int) with (autovacuum_enabled = off);
    insert into other.busy select generate_series(1, 500)`);
  expect(await upkeepPass(pool, 'no_such_schema')).toEqual([]);
  expect((await upkeepPass(pool, 'upk')).map((a) => a.table)).not.toContain('busy');
});
