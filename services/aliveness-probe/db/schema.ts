import { bigserial, boolean, index, integer, pgSchema, real, text, timestamp } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The aliveness_probe schema: written only by the aliveness-probe service. */
export const alivenessprobeSchema = pgSchema('aliveness_probe');
export const outbox = outboxTable(alivenessprobeSchema);

const at = (name: string) => timestamp(name, { withTimezone: true });

/**
 * Projection of inventory's nodes (node.created/changed/deleted). `eventTime` orders updates so a late
 * redelivery never overwrites newer facts; deleted nodes stay as tombstones for the same reason.
 */
export const nodes = alivenessprobeSchema.table('nodes', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
  alive: boolean('alive').notNull(),
  available: boolean('available').notNull(),
  system: boolean('system').notNull(),
  sshHostKey: text('ssh_host_key'),
  deleted: boolean('deleted').notNull().default(false),
  eventTime: at('event_time').notNull(),
});

/** Projection of admin-network allocations (allocation.created/deleted), address without prefix length. */
export const addresses = alivenessprobeSchema.table(
  'addresses',
  {
    allocationId: integer('allocation_id').primaryKey(),
    nodeId: integer('node_id').notNull(),
    address: text('address').notNull(),
    family: text('family').notNull(),
    deleted: boolean('deleted').notNull().default(false),
  },
  (t) => [index('addresses_node_idx').on(t.nodeId)],
);

/** The hysteresis state per node (the probe's own verdict, see domain/hysteresis.ts). */
export const probeState = alivenessprobeSchema.table('probe_state', {
  nodeId: integer('node_id').primaryKey(),
  verdict: text('verdict').notNull().default('unknown'),
  failures: integer('failures').notNull().default(0),
  reason: text('reason').notNull().default('not probed yet'),
  lastProbeAt: at('last_probe_at'),
  lastSuccessAt: at('last_success_at'),
  lastFailureAt: at('last_failure_at'),
  /** After someone else changed aliveness (a self-report), reports wait until then. */
  holdUntil: at('hold_until'),
});

/** Every probe result, pruned to the newest N per node. */
export const probeHistory = alivenessprobeSchema.table(
  'probe_history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    nodeId: integer('node_id').notNull(),
    at: at('at').notNull(),
    ok: boolean('ok').notNull(),
    stage: text('stage').notNull(),
    reason: text('reason').notNull(),
    address: text('address'),
    durationMs: real('duration_ms').notNull(),
    trigger: text('trigger').notNull(),
  },
  (t) => [index('probe_history_node_idx').on(t.nodeId, t.id)],
);
