import { type SQL, sql } from 'drizzle-orm';

export type Row = Record<string, unknown>;

/**
 * What a store function runs its statements on: the engine's `GraphTx`, which runs each as a named
 * prepared statement inside its transaction. Values travel as parameters, never in the text.
 */
export interface StoreTx {
  rows<T = Row>(query: SQL): Promise<T[]>;
  one<T = Row>(query: SQL): Promise<T | undefined>;
}

/**
 * `col` is one of `ids`. One id is written `col = $1`: PostgreSQL plans `= any($1)` afresh on every call
 * (its generic plan guesses ten elements, so the one-element custom plan always looks cheaper), which
 * the engine's one-noderole paths cannot afford; a batch plans once for many rows.
 */
export const idIn = (col: SQL, ids: number[]) =>
  ids.length === 1 ? sql`${col} = ${ids[0]}` : sql`${col} = any(${sql.param(ids)}::int[])`;
