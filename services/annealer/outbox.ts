import type { z } from 'zod';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import { type CommandDef, type EventDef, wireType } from '../../shared/catalogue/index.js';
import type { OutboxEntry, OutboxTable } from '../../shared/db/outbox.js';

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
