import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { Database } from '../../../shared/db/database.js';
import { NotFoundError } from '../../../shared/errors.js';
import { type DeliveryStatus, webhookDeliveries, webhooks } from './schema.js';

export type { DeliveryStatus } from './schema.js';

/** Every query about webhooks (the gateway schema's `webhooks` table). */
export type WebhookState = 'active' | 'failing';
export interface WebhookRow {
  id: number;
  url: string;
  filter: string;
  description: string;
  state: WebhookState;
  failures: number;
  lastError: string | null;
  lastErrorAt: string | null;
  failedSeq: number | null;
  deadLettered: number;
  createdAt: string;
  createdBy: string | null;
}
/** What a delivering gateway needs: the row and its secret. */
export interface WebhookTarget extends WebhookRow {
  secret: string;
}

const columns = {
  id: webhooks.id,
  url: webhooks.url,
  filter: webhooks.filter,
  description: webhooks.description,
  state: webhooks.state,
  failures: webhooks.failures,
  lastError: webhooks.lastError,
  lastErrorAt: webhooks.lastErrorAt,
  failedSeq: webhooks.failedSeq,
  deadLettered: webhooks.deadLettered,
  createdAt: webhooks.createdAt,
  createdBy: webhooks.createdBy,
};
type Selected = Omit<WebhookRow, 'createdAt' | 'lastErrorAt'> & { createdAt: Date; lastErrorAt: Date | null };
const toRow = <R extends Selected>(r: R) => ({
  ...r,
  createdAt: r.createdAt.toISOString(),
  lastErrorAt: r.lastErrorAt ? r.lastErrorAt.toISOString() : null,
});
const notFound = (id: number) => new NotFoundError(`no webhook ${id}`, { field: 'id' });

/** One row of a webhook's delivery log, as the API shows it. */
export interface DeliveryRow {
  /** The delivery id, as `webhook-id` and `X-Crowbar-Delivery` carry it: `<webhook>-<seq>`. */
  id: string;
  webhook: number;
  seq: number;
  eventId: string | null;
  type: string;
  node: string | null;
  status: DeliveryStatus;
  attempts: number;
  httpStatus: number | null;
  error: string | null;
  durationMs: number;
  firstAttemptAt: string;
  lastAttemptAt: string;
  deliveredAt: string | null;
  redeliveries: number;
}
/** An attempt's outcome, for the log. */
export interface AttemptRecord {
  webhookId: number;
  seq: number;
  eventId: string | null;
  type: string;
  node: string | null;
  status: DeliveryStatus;
  httpStatus: number | null;
  /** Null on success (the last failure's reason stays in the row). */
  error: string | null;
  durationMs: number;
}

const d = webhookDeliveries;
const deliveryColumns = {
  webhookId: d.webhookId,
  seq: d.seq,
  eventId: d.eventId,
  type: d.type,
  node: d.node,
  status: d.status,
  attempts: d.attempts,
  httpStatus: d.httpStatus,
  error: d.error,
  durationMs: d.durationMs,
  firstAttemptAt: d.firstAttemptAt,
  lastAttemptAt: d.lastAttemptAt,
  deliveredAt: d.deliveredAt,
  redeliveries: d.redeliveries,
};
type SelectedDelivery = Omit<
  DeliveryRow,
  'id' | 'webhook' | 'firstAttemptAt' | 'lastAttemptAt' | 'deliveredAt'
> & {
  webhookId: number;
  firstAttemptAt: Date;
  lastAttemptAt: Date;
  deliveredAt: Date | null;
};
const toDelivery = ({ webhookId, seq, ...r }: SelectedDelivery): DeliveryRow => ({
  id: `${webhookId}-${seq}`,
  webhook: webhookId,
  seq,
  ...r,
  firstAttemptAt: r.firstAttemptAt.toISOString(),
  lastAttemptAt: r.lastAttemptAt.toISOString(),
  deliveredAt: r.deliveredAt ? r.deliveredAt.toISOString() : null,
});

export class WebhookStore {
  constructor(private readonly database: Database) {}
  private get db() {
    return this.database.db;
  }

  /**
   * Inserts a webhook and runs `withId` (which makes its JetStream consumer) in the same transaction, so
   * a webhook never exists without its consumer: if `withId` throws, there is no row either.
   */
  async create(
    w: { url: string; filter: string; description: string; secret: string; createdBy: string | null },
    withId: (id: number) => Promise<void>,
  ): Promise<WebhookRow> {
    return this.db.transaction(async (tx) => {
      const [r] = await tx.insert(webhooks).values(w).returning(columns);
      await withId(r!.id);
      return toRow(r!);
    });
  }

  async list(): Promise<WebhookRow[]> {
    return (await this.db.select(columns).from(webhooks).orderBy(webhooks.id)).map(toRow);
  }

  /** Every webhook with its secret, for the dispatcher. */
  async targets(): Promise<WebhookTarget[]> {
    const rows = await this.db
      .select({ ...columns, secret: webhooks.secret })
      .from(webhooks)
      .orderBy(webhooks.id);
    return rows.map(toRow);
  }

  /** One webhook with its secret (a redelivery signs with it). */
  async target(id: number): Promise<WebhookTarget> {
    const [r] = await this.db
      .select({ ...columns, secret: webhooks.secret })
      .from(webhooks)
      .where(eq(webhooks.id, id));
    if (!r) throw notFound(id);
    return toRow(r);
  }

  async get(id: number): Promise<WebhookRow> {
    const [r] = await this.db.select(columns).from(webhooks).where(eq(webhooks.id, id));
    if (!r) throw notFound(id);
    return toRow(r);
  }

  /** Deletes the row and then runs `after` (the consumer's removal); a webhook that is gone is a 404. */
  async delete(id: number, after: () => Promise<void>): Promise<WebhookRow> {
    const [r] = await this.db.delete(webhooks).where(eq(webhooks.id, id)).returning(columns);
    if (!r) throw notFound(id);
    await after();
    return toRow(r);
  }

  /** One more failed attempt at the event `seq`; answers how many in a row, and the state. */
  async recordFailure(id: number, seq: number, error: string): Promise<{ failures: number; state: string }> {
    const [r] = await this.db
      .update(webhooks)
      .set({
        failures: sql`${webhooks.failures} + 1`,
        lastError: error,
        lastErrorAt: sql`now()`,
        failedSeq: seq,
      })
      .where(eq(webhooks.id, id))
      .returning({ failures: webhooks.failures, state: webhooks.state });
    return r ?? { failures: 0, state: 'gone' };
  }

  /** A delivery went through: the count of failures in a row starts again. */
  async resetFailures(id: number): Promise<void> {
    await this.db
      .update(webhooks)
      .set({ failures: 0 })
      .where(and(eq(webhooks.id, id), sql`${webhooks.failures} > 0`));
  }

  /** Stops deliveries at event `seq` (null: the consumer is gone, resuming starts with new events). */
  async markFailing(id: number, seq: number | null, error: string): Promise<void> {
    await this.db
      .update(webhooks)
      .set({
        state: 'failing',
        lastError: error,
        lastErrorAt: sql`now()`,
        failedSeq: seq,
      })
      .where(eq(webhooks.id, id));
  }

  /** The event at the webhook's head was given up on: counted, and the next one starts from no failures. */
  async deadLettered(id: number, reason: string): Promise<void> {
    await this.db
      .update(webhooks)
      .set({
        deadLettered: sql`${webhooks.deadLettered} + 1`,
        failures: 0,
        lastError: reason,
        lastErrorAt: sql`now()`,
      })
      .where(eq(webhooks.id, id));
  }

  /**
   * Records an attempt in the delivery log: the event's row is made by its first attempt and updated by
   * every later one. Answers whether the row is new (the caller prunes the log now and then).
   */
  async recordAttempt(a: AttemptRecord): Promise<{ inserted: boolean; attempts: number }> {
    const delivered = a.status === 'delivered';
    const [r] = await this.db
      .insert(d)
      .values({
        webhookId: a.webhookId,
        seq: a.seq,
        eventId: a.eventId,
        type: a.type,
        node: a.node,
        status: a.status,
        attempts: 1,
        httpStatus: a.httpStatus,
        error: a.error,
        durationMs: a.durationMs,
        ...(delivered ? { deliveredAt: sql`now()` } : {}),
      })
      .onConflictDoUpdate({
        target: [d.webhookId, d.seq],
        set: {
          status: a.status,
          attempts: sql`${d.attempts} + 1`,
          httpStatus: a.httpStatus,
          error: a.error ?? sql`${d.error}`,
          durationMs: a.durationMs,
          lastAttemptAt: sql`now()`,
          ...(delivered ? { deliveredAt: sql`now()` } : {}),
        },
      })
      .returning({ attempts: d.attempts, inserted: sql<boolean>`(xmax = 0)` });
    return { inserted: r?.inserted ?? false, attempts: r?.attempts ?? 0 };
  }

  /** Keeps the webhook's newest `keep` events in its log (by stream sequence); answers how many went. */
  async pruneDeliveries(webhookId: number, keep: number): Promise<number> {
    const r = await this.db.execute(sql`
      DELETE FROM ${d} WHERE ${d.webhookId} = ${webhookId} AND ${d.seq} <= (
        SELECT ${d.seq} FROM ${d} WHERE ${d.webhookId} = ${webhookId}
        ORDER BY ${d.seq} DESC OFFSET ${keep} LIMIT 1)`);
    return r.rowCount ?? 0;
  }

  /** A page of the log, newest event first: `before` is the last sequence of the page before. */
  async listDeliveries(q: {
    webhookId: number;
    limit: number;
    before?: number;
    status?: DeliveryStatus;
  }): Promise<{ deliveries: DeliveryRow[]; next: string | null }> {
    const rows = await this.db
      .select(deliveryColumns)
      .from(d)
      .where(
        and(
          eq(d.webhookId, q.webhookId),
          q.before !== undefined ? lt(d.seq, q.before) : undefined,
          q.status ? eq(d.status, q.status) : undefined,
        ),
      )
      .orderBy(desc(d.seq))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit).map(toDelivery);
    return { deliveries: page, next: rows.length > q.limit ? String(page.at(-1)!.seq) : null };
  }

  async getDelivery(webhookId: number, seq: number): Promise<DeliveryRow | null> {
    const [r] = await this.db
      .select(deliveryColumns)
      .from(d)
      .where(and(eq(d.webhookId, webhookId), eq(d.seq, seq)));
    return r ? toDelivery(r) : null;
  }

  /** An operator asked for the event again: counted on its row (null: no such row). */
  async markRedelivery(webhookId: number, seq: number): Promise<DeliveryRow | null> {
    const [r] = await this.db
      .update(d)
      .set({ redeliveries: sql`${d.redeliveries} + 1` })
      .where(and(eq(d.webhookId, webhookId), eq(d.seq, seq)))
      .returning(deliveryColumns);
    return r ? toDelivery(r) : null;
  }

  /**
   * Resumes a failing webhook: `before` (which makes its consumer again, starting at the failed event)
   * runs first, then the row is active again with no failures counted.
   */
  async resume(id: number, before: (row: WebhookRow) => Promise<void>): Promise<WebhookRow> {
    const row = await this.get(id);
    await before(row);
    const [r] = await this.db
      .update(webhooks)
      .set({ state: 'active', failures: 0 })
      .where(eq(webhooks.id, id))
      .returning(columns);
    if (!r) throw notFound(id);
    return toRow(r);
  }
}
