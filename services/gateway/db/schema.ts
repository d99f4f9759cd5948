import {
  bigserial,
  index,
  integer,
  pgSchema,
  serial,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/**
 * The gateway schema: operator tokens and the audit log, written only by gateways. Every gateway process
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
