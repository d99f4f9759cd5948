import type { z } from 'zod';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import {
  type AllocationSummary,
  type EventDef,
  ipamMessages,
  wireType,
} from '../../shared/catalogue/index.js';
import type { OutboxEntry } from '../../shared/db/outbox.js';
import type { Tx } from './db/network-store.js';
import { outbox } from './db/schema.js';

export const outboxChannel = 'network_ipam_outbox';

/** Collects the events of one transaction; `flush` writes them to the outbox inside that transaction. */
export class EventBatch {
  private readonly entries: OutboxEntry[] = [];
  constructor(private readonly bus: Bus) {}

  add<S extends z.ZodType>(def: EventDef<S>, data: z.input<S>) {
    const payload = parsePayload(def.schema, data, `${def.type} payload`);
    this.entries.push({ subject: def.subject, envelope: this.bus.envelope(wireType(def), payload) });
  }

  allocationCreated(a: AllocationSummary) {
    this.add(ipamMessages.allocationCreated, { allocation: a });
  }

  allocationDeleted(a: AllocationSummary) {
    this.add(ipamMessages.allocationDeleted, { allocation: a });
  }

  get size() {
    return this.entries.length;
  }

  /**
   * Writes the rows without NOTIFY: PostgreSQL serialises the commits of notifying transactions, which
   * would cap allocations at one commit (one fsync) at a time. The caller wakes its relay after commit;
   * other instances' relays find the rows on their poll.
   */
  async flush(tx: Tx) {
    const rows = this.entries.splice(0);
    if (rows.length) await tx.insert(outbox).values(rows);
  }
}
