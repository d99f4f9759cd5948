import { and, eq, sql } from 'drizzle-orm';
import type { Database } from '../../../shared/db/database.js';
import { NotFoundError } from '../../../shared/errors.js';
import { webhooks } from './schema.js';

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
