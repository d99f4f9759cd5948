import { sql } from 'drizzle-orm';
import { bigserial, getTableConfig, jsonb, type PgSchema, text, timestamp } from 'drizzle-orm/pg-core';
import type { Bus } from '../bus/bus.js';
import type { Envelope } from '../bus/envelope.js';
import { type Faults, noFaults } from '../fault.js';
import type { Logger } from '../log.js';
import type { Database, Db } from './database.js';
import { queryText } from './prepared.js';

/**
 * A transactional outbox: a service writes its state change and the events describing it in one
 * transaction; the relay publishes them afterwards (message id = envelope id, so a re-publish after a
 * crash is dropped by JetStream's de-duplication).
 */
export const outboxTable = (schema: PgSchema) =>
  schema.table('outbox', {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    subject: text('subject').notNull(),
    envelope: jsonb('envelope').$type<Envelope>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  });
export type OutboxTable = ReturnType<typeof outboxTable>;

/** `"schema"."outbox"` for raw statements. */
function qualified(table: OutboxTable): string {
  const c = getTableConfig(table);
  return `"${c.schema}"."${c.name}"`;
}

/** Rows to add inside the caller's transaction. */
export interface OutboxEntry {
  subject: string;
  envelope: Envelope;
}

/**
 * Adds `entries` inside the caller's transaction. With a `channel`, a NOTIFY wakes the relays of every
 * instance at commit. Writers whose own relay is kicked after commit leave it out: PostgreSQL serialises
 * the commits of notifying transactions (one queue lock held through the WAL flush), which costs
 * group commit under load.
 */
export async function enqueueOutbox(
  tx: Pick<Db, 'insert' | 'execute'>,
  table: OutboxTable,
  entries: OutboxEntry[],
  channel?: string,
) {
  if (entries.length === 0) return;
  // One prepared statement whatever the number of entries (arrays in, rows out).
  await queryText(
    tx,
    `insert into ${qualified(table)} (subject, envelope) select s, e::jsonb from unnest($1::text[], $2::text[]) as x(s, e)`,
    [entries.map((e) => e.subject), entries.map((e) => JSON.stringify(e.envelope))],
  );
  if (channel) await tx.execute(sql`select pg_notify(${channel}, '')`);
}

export interface OutboxRelay {
  /** Publish what is waiting now; resolves when the outbox is empty (or a publish failed). */
  flush(): Promise<number>;
  stop(): Promise<void>;
}

/** Publishes outbox rows in id order, woken by NOTIFY and by a slow timer in case a notify is lost. */
export function startOutboxRelay(deps: {
  database: Database;
  table: OutboxTable;
  channel: string;
  bus: Bus;
  log: Logger;
  pollMs?: number;
  /** Test-only stops (`outbox-before-publish`, `outbox-after-publish`); none by default. */
  faults?: Faults;
}): OutboxRelay {
  const { database, table, bus, log } = deps;
  const faults = deps.faults ?? noFaults;
  const name = qualified(table);
  let stopped = false;
  let running: Promise<number> | null = null;
  let again = false;

  const drainOnce = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await database.db.transaction(async (tx) => {
        const rows = await queryText<{ id: number; subject: string; envelope: Envelope }>(
          tx,
          `select id, subject, envelope from ${name} order by id limit 200 for update skip locked`,
          [],
        );
        if (rows.length === 0) return 0;
        const at = { table: name, rows: rows.length, subjects: rows.map((r) => r.subject) };
        await faults.at('outbox-before-publish', at);
        await Promise.all(rows.map((r) => bus.publishEnvelope(r.subject, r.envelope, r.envelope.id)));
        await faults.at('outbox-after-publish', at);
        await queryText(tx, `delete from ${name} where id = any($1::bigint[])`, [rows.map((r) => r.id)]);
        return rows.length;
      });
      total += n;
      if (n === 0) return total;
    }
  };

  const flush = (): Promise<number> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      do {
        again = false;
        try {
          total += await drainOnce();
        } catch (err) {
          log.warn({ err }, 'outbox relay could not publish; will retry');
          break;
        }
      } while (again && !stopped);
      return total;
    })().finally(() => {
      running = null;
    });
    return running;
  };

  // LISTEN on a connection of its own; one that breaks (a database restart) is dropped and made again,
  // and meanwhile the poll below keeps the relay going.
  let listener: import('pg').PoolClient | null = null;
  let relisten: NodeJS.Timeout | undefined;
  const listen = async () => {
    let client: import('pg').PoolClient | null = null;
    try {
      client = await database.pool.connect();
      const c = client;
      c.on('notification', () => void flush());
      c.on('error', () => {
        if (listener !== c) return;
        listener = null;
        c.release(true);
        if (!stopped) relisten = setTimeout(() => void listen(), 1000);
      });
      await c.query(`listen "${deps.channel}"`);
      if (stopped) return c.release(true);
      listener = c;
      void flush();
    } catch (err) {
      client?.release(true);
      log.warn({ err }, 'outbox relay cannot LISTEN; polling until it can');
      if (!stopped) relisten = setTimeout(() => void listen(), 5000);
    }
  };
  void listen();
  const timer = setInterval(() => void flush(), deps.pollMs ?? 1000);

  return {
    flush,
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(relisten);
      await running?.catch(() => undefined);
      // Closing the connection ends the LISTEN; a query on a broken one could wait forever.
      const l = listener;
      listener = null;
      l?.release(true);
    },
  };
}
