import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgSchema,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';
import type { NodeSummary } from '../../../shared/catalogue/index.js';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The provisioner schema: written only by the provisioner service. */
export const provisionerSchema = pgSchema('provisioner');
export const outbox = outboxTable(provisionerSchema);

/** Projection of inventory's nodes (MACs, name, bootenv); newest event wins, deletions are tombstones. */
export const nodes = provisionerSchema.table('nodes', {
  id: integer('id').primaryKey(),
  summary: jsonb('summary').$type<NodeSummary>().notNull(),
  deleted: boolean('deleted').notNull().default(false),
  sourceTime: timestamp('source_time', { withTimezone: true, precision: 3 }).notNull(),
});

/** What each machine fetched (the flight recorder's boot lines, and the install's convergence check). */
export const bootEvents = provisionerSchema.table(
  'boot_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    nodeId: integer('node_id'),
    mac: text('mac'),
    client: text('client').notNull(),
    transport: text('transport').$type<'http' | 'tftp'>().notNull(),
    file: text('file').notNull(),
    bootenv: text('bootenv'),
    bytes: bigint('bytes', { mode: 'number' }).notNull(),
    ok: boolean('ok').notNull(),
    error: text('error'),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('boot_events_node_idx').on(t.nodeId, t.id), index('boot_events_mac_idx').on(t.mac, t.id)],
);

/**
 * Installs provisioner-os-install asked for (reference §6.5): the bootenv and disk chosen when the
 * noderole went TODO, which the install boot script renders, and when the node was told to reboot.
 */
export const installs = provisionerSchema.table('installs', {
  nodeId: integer('node_id').primaryKey(),
  bootenv: text('bootenv').notNull(),
  disk: text('disk').notNull(),
  requestedAt: timestamp('requested_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  rebootedAt: timestamp('rebooted_at', { withTimezone: true, precision: 3 }),
});
