import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import pg from 'pg';

const dialect = new PgDialect();

/**
 * Our queries are few and fixed, and the engine's run thousands of times a minute; planning them each
 * time cost PostgreSQL more than running them. Each distinct text gets a statement name, so every
 * connection parses and plans it once. Values must travel as parameters, never inside the text: a
 * text that varies per call would use up the names (past `maxNamed` texts, queries go unnamed and are
 * planned on every call) — `namedStatementCount` lets tests check that a workload adds none, and table
 * upkeep logs a warning once they run out.
 */
const maxNamed = 2000;
const statementNames = new Map<string, string>();
export function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (!name && statementNames.size < maxNamed) {
    name = `crowbar_${statementNames.size}`;
    statementNames.set(text, name);
  }
  return name;
}
/** How many distinct SQL texts this process has named so far. */
export const namedStatementCount = () => statementNames.size;
/** Whether the names have run out (table upkeep logs it: a query puts values in its text). */
export const statementNamesFull = () => statementNames.size >= maxNamed;

/** Results read as drizzle's `execute` reads them: date and time values stay strings. */
const keepText = (v: string) => v;
const textTypes = new Set([1082, 1114, 1115, 1182, 1184, 1185, 1186, 1187, 1231]);
export const rawTypes = {
  getTypeParser: (id: number, format?: 'text' | 'binary') =>
    textTypes.has(id) ? keepText : pg.types.getTypeParser(id, format),
} as pg.CustomTypesConfig;

/** Something drizzle runs queries on: the pool-backed database or a transaction. */
export type Queryable = { execute: unknown };

/** The pg pool or client under a drizzle database or transaction. */
export function clientOf(target: Queryable): pg.Pool | pg.ClientBase {
  return (target as unknown as { session: { client: pg.Pool | pg.ClientBase } }).session.client;
}

/** Runs a raw text query with positional values as a named prepared statement. */
export async function queryText<T>(target: Queryable, text: string, values: unknown[]): Promise<T[]> {
  const r = await clientOf(target).query({ name: statementName(text), text, values, types: rawTypes });
  return r.rows as T[];
}

/** Runs a drizzle `sql` query as a named prepared statement on `target`; returns its rows. */
export async function queryRows<T>(target: Queryable, query: SQL): Promise<T[]> {
  const q = dialect.sqlToQuery(query);
  return queryText<T>(target, q.sql, q.params);
}
