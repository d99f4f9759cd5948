import type { SQL } from 'drizzle-orm';
import type { z } from 'zod';
import { parsePayload } from '../../../shared/bus/bus.js';
import type { Envelope, Lineage } from '../../../shared/bus/envelope.js';
import {
  type EventDef,
  inventoryEvents,
  type NoderoleSummary,
  type NodeSummary,
  wireType,
} from '../../../shared/catalogue/index.js';
import type { Db } from '../../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry } from '../../../shared/db/outbox.js';
import { queryRows } from '../../../shared/db/prepared.js';
import type { Logger } from '../../../shared/log.js';
import { outbox } from '../db/schema.js';
import { findNoderole, findNoderoleSummary, type NoderoleRow } from '../store/noderoles.js';
import { findNodeSummary } from '../store/nodes.js';
import type { Row, StoreTx } from '../store/query.js';

export type { NoderoleRow } from '../store/noderoles.js';
export type { Row } from '../store/query.js';

type DrizzleTx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Builds envelopes for the outbox (the bus builds them the same way for direct publishes). */
export type EnvelopeMaker = <T>(type: string, data: T, lineage?: Lineage) => Envelope<T>;

/**
 * One inventory transaction: queries, and the events it will publish through the outbox when it commits.
 * Queries run as prepared statements; see `inGraphTx` for locking and retries.
 */
export class GraphTx implements StoreTx {
  private readonly pending: OutboxEntry[] = [];
  constructor(
    readonly tx: DrizzleTx,
    private readonly envelope: EnvelopeMaker,
    readonly log: Logger,
    readonly lineage: Lineage,
  ) {}

  /** Runs `query` as a named prepared statement on this transaction's connection. */
  async rows<T = Row>(query: SQL): Promise<T[]> {
    return queryRows<T>(this.tx, query);
  }
  async one<T = Row>(query: SQL): Promise<T | undefined> {
    return (await this.rows<T>(query))[0];
  }

  emit<S extends z.ZodType>(def: EventDef<S>, data: z.input<S>): void {
    const payload = parsePayload(def.schema, data, `${def.type} event`);
    this.pending.push({
      subject: def.subject,
      envelope: this.envelope(wireType(def), payload, this.lineage),
    });
  }

  async flush(): Promise<void> {
    // No NOTIFY: the inventory service kicks its relay after every transaction (service.ts).
    await enqueueOutbox(this.tx, outbox, this.pending.splice(0));
  }

  async noderole(id: number, lock = true): Promise<NoderoleRow | undefined> {
    return findNoderole(this, id, lock);
  }

  async noderoleSummary(id: number): Promise<NoderoleSummary> {
    const r = await findNoderoleSummary(this, id);
    if (!r) throw new Error(`noderole ${id} vanished inside its transaction`);
    return r;
  }

  async nodeSummary(id: number): Promise<NodeSummary | undefined> {
    return findNodeSummary(this, id);
  }

  /** Emits `node.changed` with the node as it is now inside this transaction. */
  async nodeChanged(nodeId: number, changed: string[], reason = ''): Promise<void> {
    const node = await this.nodeSummary(nodeId);
    if (node)
      this.emit(inventoryEvents.nodeChanged, {
        node: { ...node, macs: [...node.macs].sort() },
        changed,
        reason,
      });
  }
}

/**
 * Runs `fn` in one transaction. Graph changes lock the rows they touch (noderoles FOR UPDATE, parents FOR
 * SHARE when checking them, the node row when starting a run), so work on different nodes goes on in
 * parallel; a deadlock, a serialization failure or a lost insert race rolls back and runs `fn` again.
 */
export async function inGraphTx<T>(
  db: Db,
  deps: { envelope: EnvelopeMaker; log: Logger },
  lineage: Lineage,
  fn: (g: GraphTx) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      // Queries say so (`begin read only`, no round trip of its own), and PostgreSQL holds them to it.
      return await db.transaction(
        async (tx) => {
          const g = new GraphTx(tx, deps.envelope, deps.log, lineage);
          const out = await fn(g);
          await g.flush();
          return out;
        },
        opts.readOnly ? { accessMode: 'read only' } : undefined,
      );
    } catch (err) {
      const code =
        (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if ((code === '40001' || code === '40P01' || code === '23505') && attempt < 8) {
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
        continue;
      }
      throw err;
    }
  }
}
