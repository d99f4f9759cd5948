import type { z } from 'zod';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import { type CommandDef, type EventDef, wireType } from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry, type OutboxTable } from '../../shared/db/outbox.js';
import type { Tx } from './db/store.js';

/** Jobs and run events leave through the annealer's outbox, committed with the run's state. */
export interface AnnealerOutbox {
  table: OutboxTable;
  /** Wakes the relay after a commit that added entries. */
  flush(): void;
}

/** An outbox row for `def`, checked against its schema; `id` is its envelope and de-duplication id. */
export function outboxEntry<S extends z.ZodType>(
  bus: Bus,
  def: EventDef<S> | CommandDef<S>,
  data: z.input<S>,
  id: string,
): OutboxEntry {
  return {
    subject: def.subject,
    envelope: { ...bus.envelope(wireType(def), parsePayload(def.schema, data, `${def.type} payload`)), id },
  };
}

/**
 * Writes a batch of runs and, in the same transaction, the outbox entries of the runs the write changed,
 * so a crash between the two cannot leave one without the other; wakes the relay when any were added.
 * Answers, per row, whether the write changed it.
 */
export async function writeWithEntries<R extends { id: number }>(
  db: Db,
  outbox: AnnealerOutbox,
  rows: R[],
  write: (tx: Tx, rows: R[]) => Promise<Set<number>>,
  entry: (row: R) => OutboxEntry,
): Promise<boolean[]> {
  const changed = await db.transaction(async (tx) => {
    const ids = await write(tx, rows);
    await enqueueOutbox(tx, outbox.table, rows.filter((r) => ids.has(r.id)).map(entry));
    return ids;
  });
  if (changed.size > 0) outbox.flush();
  return rows.map((r) => changed.has(r.id));
}
