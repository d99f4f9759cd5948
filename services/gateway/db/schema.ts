import {
  bigint,
  bigserial,
  index,
  integer,
  pgSchema,
  primaryKey,
  serial,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/**
 * The gateway schema: operator tokens, the audit log and webhooks, written only by gateways. Every gateway process
 * reads and writes it, so the processes themselves stay stateless and scale out.
 */
export const gatewaySchema = pgSchema('gateway');

/** Named operator tokens; only a SHA-256 of each is stored (the token is shown once, at creation). */
export const tokens = gatewaySchema.table(
  'tokens',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role').$type<'admin' | 'read-only'>().notNull(),
    hash: text('hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /** Who created it (a token name), or null for the launcher's tokens. */
    createdBy: text('created_by'),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('tokens_name').on(t.name), uniqueIndex('tokens_hash').on(t.hash)],
);

/** One row per mutating call: who, what, when, the correlation id and the result. */
export const audit = gatewaySchema.table(
  'audit',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** The token's name; null when the call carried no valid operator token (refused, or node-facing). */
    token: text('token'),
    role: text('role'),
    method: text('method').notNull(),
    path: text('path').notNull(),
    status: integer('status').notNull(),
    /** `ok`, or the error code of the answer (`invalid`, `conflict`, `unauthorized`, …). */
    result: text('result').notNull(),
    correlationId: text('correlation_id').notNull(),
  },
  (t) => [index('audit_token').on(t.token, t.id), index('audit_at').on(t.at)],
);

/**
 * Webhooks external tools register (`/api/v2/webhooks`). Each has a durable JetStream consumer on the
 * EVENTS stream named `webhook-<id>`, shared by every gateway; this row holds what the consumer cannot:
 * where to deliver, the signing secret, and whether deliveries are stopped after too many failures.
 */
export const webhooks = gatewaySchema.table('webhooks', {
  id: serial('id').primaryKey(),
  url: text('url').notNull(),
  /** Comma-separated event type patterns, as the event stream's `filter`; `>` for every event. */
  filter: text('filter').notNull(),
  description: text('description').notNull().default(''),
  /** Signs every delivery; shown once at creation. Kept in clear: the gateway needs it to sign. */
  secret: text('secret').notNull(),
  /**
   * `active`, or `failing`: its JetStream consumer is gone (the EVENTS stream was made anew), so nothing
   * is delivered until resumed. (An event that fails `attempts` times is dead-lettered, not this.)
   */
  state: text('state').$type<'active' | 'failing'>().notNull().default('active'),
  /** Failed attempts at the event now being delivered (reset by a successful delivery). */
  failures: integer('failures').notNull().default(0),
  lastError: text('last_error'),
  lastErrorAt: timestamp('last_error_at', { withTimezone: true }),
  /** The stream sequence of the event the last failure was on; resuming starts there. */
  failedSeq: bigint('failed_seq', { mode: 'number' }),
  /** Events given up on after `attempts` failures (each is in the delivery log, `dead-lettered`). */
  deadLettered: integer('dead_lettered').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  createdBy: text('created_by'),
});

export type DeliveryStatus = 'delivered' | 'failed' | 'dead-lettered';

/**
 * The per-webhook delivery log: one row per event offered to a webhook (its `webhook-id` is
 * `<webhook>-<seq>`), updated after every attempt at it — by the stream's delivery or by a redelivery an
 * operator asked for. Bounded: each webhook keeps its newest `CROWBAR_WEBHOOK_LOG_KEEP` events (by
 * sequence), and its rows go with it.
 */
export const webhookDeliveries = gatewaySchema.table(
  'webhook_deliveries',
  {
    webhookId: integer('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    /** The event's stream sequence in EVENTS. */
    seq: bigint('seq', { mode: 'number' }).notNull(),
    /** The envelope's id. */
    eventId: text('event_id'),
    /** `node.changed.v1`, … (the subject's tail). */
    type: text('type').notNull(),
    /** The node the event is about (its name), when it is about one. */
    node: text('node'),
    /** `failed`: the last attempt failed and another is due; `delivered`; `dead-lettered`: given up. */
    status: text('status').$type<DeliveryStatus>().notNull(),
    attempts: integer('attempts').notNull(),
    /** The last attempt's HTTP status (null: no answer). */
    httpStatus: integer('http_status'),
    /** The last failure's reason (kept after a later success); for `dead-lettered`, why it was given up. */
    error: text('error'),
    /** How long the last attempt took. */
    durationMs: integer('duration_ms').notNull(),
    firstAttemptAt: timestamp('first_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    /** How many times an operator asked for it to be sent again. */
    redeliveries: integer('redeliveries').notNull().default(0),
  },
  (t) => [
    primaryKey({ name: 'webhook_deliveries_pk', columns: [t.webhookId, t.seq] }),
    index('webhook_deliveries_status').on(t.webhookId, t.status, t.seq),
  ],
);
