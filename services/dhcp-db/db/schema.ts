import { sql } from 'drizzle-orm';
import { boolean, index, inet, integer, jsonb, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';
import type { AllocationSummary, NetworkDetail, NodeSummary } from '../../../shared/catalogue/index.js';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The dhcp_db schema: written only by the dhcp-db service. */
export const dhcpdbSchema = pgSchema('dhcp_db');
export const outbox = outboxTable(dhcpdbSchema);

const sourceTime = () => timestamp('source_time', { withTimezone: true, precision: 3 }).notNull();

/**
 * Projections of inventory's nodes, network-ipam's allocations and networks (with their ranges and
 * routers). `sourceTime` is the time of the event or re-sync that wrote the row, so an older event
 * never overwrites newer state; deletions stay as tombstones.
 */
export const nodes = dhcpdbSchema.table('nodes', {
  id: integer('id').primaryKey(),
  summary: jsonb('summary').$type<NodeSummary>().notNull(),
  deleted: boolean('deleted').notNull().default(false),
  sourceTime: sourceTime(),
});

export const allocations = dhcpdbSchema.table(
  'allocations',
  {
    id: integer('id').primaryKey(),
    nodeId: integer('node_id').notNull(),
    summary: jsonb('summary').$type<AllocationSummary>().notNull(),
    deleted: boolean('deleted').notNull().default(false),
    sourceTime: sourceTime(),
  },
  (t) => [index('allocations_node_idx').on(t.nodeId)],
);

export const networks = dhcpdbSchema.table('networks', {
  id: integer('id').primaryKey(),
  detail: jsonb('detail').$type<NetworkDetail>().notNull(),
  deleted: boolean('deleted').notNull().default(false),
  sourceTime: sourceTime(),
});

/**
 * One row per address ever leased. The primary key on the address is what makes it impossible for two
 * MACs to hold one address, whatever number of dhcp-db instances run: a bound lease is only taken over
 * once it has ended (released, expired, or a declined address's quarantine is over).
 */
export const leases = dhcpdbSchema.table(
  'leases',
  {
    address: inet('address').primaryKey(),
    mac: text('mac').notNull(),
    networkId: integer('network_id').notNull(),
    range: text('range').notNull(),
    nodeId: integer('node_id'),
    hostname: text('hostname'),
    state: text('state').$type<'bound' | 'released' | 'expired' | 'declined'>().notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }).notNull(),
    iface: text('interface'),
    relay: text('relay'),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    index('leases_mac_idx').on(t.mac),
    index('leases_bound_expiry_idx').on(t.expiresAt).where(sql`state in ('bound', 'declined')`),
  ],
);

export const meta = dhcpdbSchema.table('meta', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
});
