import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  serial,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';
import type { AllocationSummary, NodeSummary } from '../../../shared/catalogue/index.js';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The dns_db schema: written only by the dns-db service. */
export const dnsdbSchema = pgSchema('dns_db');
export const outbox = outboxTable(dnsdbSchema);

/**
 * Projection of inventory's nodes. `sourceTime` is the time of the event (or re-sync) that wrote the row,
 * so a late or replayed older event never overwrites newer state; deletions stay as tombstones.
 */
export const nodes = dnsdbSchema.table('nodes', {
  id: integer('id').primaryKey(),
  summary: jsonb('summary').$type<NodeSummary>().notNull(),
  deleted: boolean('deleted').notNull().default(false),
  sourceTime: timestamp('source_time', { withTimezone: true, precision: 3 }).notNull(),
});

/** Projection of network-ipam's allocations, same rules as nodes. */
export const allocations = dnsdbSchema.table(
  'allocations',
  {
    id: integer('id').primaryKey(),
    nodeId: integer('node_id').notNull(),
    summary: jsonb('summary').$type<AllocationSummary>().notNull(),
    deleted: boolean('deleted').notNull().default(false),
    sourceTime: timestamp('source_time', { withTimezone: true, precision: 3 }).notNull(),
  },
  (t) => [index('allocations_node_idx').on(t.nodeId)],
);

/** The original's dns_name_filters (reference §6.7). */
export const nameFilters = dnsdbSchema.table('name_filters', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  matcher: text('matcher').notNull(),
  priority: integer('priority').notNull().unique(),
  template: text('template').notNull(),
  service: text('service').notNull().default('system'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Served records (A/AAAA and their PTR), each derived from one allocation by one filter. */
export const records = dnsdbSchema.table(
  'records',
  {
    allocationId: integer('allocation_id').notNull(),
    filterId: integer('filter_id').notNull(),
    type: text('type').$type<'A' | 'AAAA' | 'PTR'>().notNull(),
    zone: text('zone').notNull(),
    name: text('name').notNull(),
    data: text('data').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.allocationId, t.filterId, t.type] }),
    index('records_zone_idx').on(t.zone),
  ],
);

/** Zones and their SOA serials; a serial only ever goes up. */
export const zones = dnsdbSchema.table('zones', {
  name: text('name').primaryKey(),
  serial: bigint('serial', { mode: 'number' }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Small facts about the projection itself (e.g. that the default filter was seeded once). */
export const meta = dnsdbSchema.table('meta', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
});
