import {
  boolean,
  index,
  inet,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  serial,
  text,
  timestamp,
  unique,
} from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The network_ipam schema: written only by the network-ipam service. */
export const networkipamSchema = pgSchema('network_ipam');
export const outbox = outboxTable(networkipamSchema);

const stamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
};

/** Installation-wide facts, e.g. the ULA global ID (generated once, never changed). */
export const settings = networkipamSchema.table('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export const networks = networkipamSchema.table(
  'networks',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull().unique(),
    description: text('description').notNull().default(''),
    deploymentId: integer('deployment_id').notNull(),
    category: text('category').notNull(),
    group: text('group_name').notNull(),
    conduit: text('conduit').notNull(),
    vlan: integer('vlan').notNull().default(0),
    useVlan: boolean('use_vlan').notNull().default(false),
    teamMode: integer('team_mode').notNull().default(5),
    useTeam: boolean('use_team').notNull().default(false),
    useBridge: boolean('use_bridge').notNull().default(false),
    configure: boolean('configure').notNull().default(true),
    pbr: text('pbr'),
    /** The materialised /64 (four hextets) or null; `v6Auto` says it came from `auto`. */
    v6prefix: text('v6prefix'),
    v6Auto: boolean('v6_auto').notNull().default(false),
    order: integer('sort_order').notNull().default(1000),
    /** Inventory acknowledged the `network-<name>` role (defineRole is retried until then). */
    roleDefined: boolean('role_defined').notNull().default(false),
    ...stamps,
  },
  (t) => [index('networks_category_idx').on(t.category)],
);

export const ranges = networkipamSchema.table(
  'ranges',
  {
    id: serial('id').primaryKey(),
    networkId: integer('network_id')
      .notNull()
      .references(() => networks.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    family: text('family').notNull(),
    first: inet('first').notNull(),
    last: inet('last').notNull(),
    /** Prefix length of the subnet first/last live in. */
    prefix: integer('prefix').notNull(),
    overlap: boolean('overlap').notNull().default(false),
    conduit: text('conduit'),
    vlan: integer('vlan'),
    useVlan: boolean('use_vlan'),
    useBridge: boolean('use_bridge'),
    teamMode: integer('team_mode'),
    useTeam: boolean('use_team'),
    allowAnonLeases: boolean('allow_anon_leases').notNull(),
    allowBoundLeases: boolean('allow_bound_leases').notNull(),
    anonLeaseTime: integer('anon_lease_time').notNull(),
    boundLeaseTime: integer('bound_lease_time').notNull(),
    /** True when every free address of the range sits in free_addresses (small ranges). */
    pooled: boolean('pooled').notNull().default(false),
    ...stamps,
  },
  (t) => [unique('ranges_network_name_key').on(t.networkId, t.name)],
);

export const routers = networkipamSchema.table(
  'routers',
  {
    id: serial('id').primaryKey(),
    networkId: integer('network_id')
      .notNull()
      .references(() => networks.id, { onDelete: 'cascade' }),
    family: text('family').notNull(),
    address: inet('address').notNull(),
    prefix: integer('prefix').notNull(),
    pref: integer('pref').notNull(),
    ...stamps,
  },
  (t) => [unique('routers_network_family_key').on(t.networkId, t.family)],
);

/**
 * Free addresses of pooled ranges. Allocation takes the lowest one with FOR UPDATE SKIP LOCKED, so
 * concurrent allocators never wait on each other and the database referees every address.
 */
export const freeAddresses = networkipamSchema.table(
  'free_addresses',
  {
    rangeId: integer('range_id')
      .notNull()
      .references(() => ranges.id, { onDelete: 'cascade' }),
    address: inet('address').notNull(),
  },
  (t) => [primaryKey({ columns: [t.rangeId, t.address] })],
);

export const allocations = networkipamSchema.table(
  'allocations',
  {
    id: serial('id').primaryKey(),
    nodeId: integer('node_id').notNull(),
    // No foreign keys here on purpose: an FK check share-locks the parent row, and 50 allocators
    // share-locking one range row turn every insert into multixact churn (≈1.5× slower). Deletions
    // fence in-flight claims instead: the free pool for pooled ranges, an advisory lock for the others.
    networkId: integer('network_id').notNull(),
    rangeId: integer('range_id').notNull(),
    family: text('family').notNull(),
    /** Host address only (no mask); the range's prefix gives the CIDR. Unique across the installation. */
    address: inet('address').notNull(),
    createdAt: stamps.createdAt,
  },
  (t) => [
    unique('allocations_address_key').on(t.address),
    unique('allocations_range_node_key').on(t.rangeId, t.nodeId),
    index('allocations_node_idx').on(t.nodeId),
    index('allocations_network_idx').on(t.networkId),
  ],
);

/** Projection of inventory's nodes (upserted by id from node events). */
export const nodes = networkipamSchema.table(
  'nodes',
  {
    id: integer('id').primaryKey(),
    name: text('name').notNull(),
    admin: boolean('admin').notNull(),
    deploymentId: integer('deployment_id').notNull(),
    /** `<network>-v4addr` / `<network>-v6addr` → address, from the node's hint (inventory's summary). */
    addressHints: jsonb('address_hints').$type<Record<string, string>>().notNull().default({}),
    /** When the event (or answer) this row was last written from was made: older ones change nothing. */
    seenAt: timestamp('seen_at', { withTimezone: true }),
    updatedAt: stamps.updatedAt,
  },
  (t) => [index('nodes_name_idx').on(t.name)],
);

/** Nodes inventory has deleted: a node event that arrives after the deletion must not bring one back. */
export const deletedNodes = networkipamSchema.table('deleted_nodes', {
  id: integer('id').primaryKey(),
  deletedAt: timestamp('deleted_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Calls inventory still owes (define/delete a network role, bind it to a node), written in the same
 * transaction as the change that needs them and retried until inventory answers.
 */
export const roleTasks = networkipamSchema.table(
  'role_tasks',
  {
    id: serial('id').primaryKey(),
    kind: text('kind').notNull(),
    role: text('role').notNull(),
    nodeId: integer('node_id').notNull().default(0),
    attempts: integer('attempts').notNull().default(0),
    nextAt: timestamp('next_at', { withTimezone: true }).notNull().defaultNow(),
    lastError: text('last_error'),
  },
  (t) => [unique('role_tasks_key').on(t.kind, t.role, t.nodeId), index('role_tasks_next_idx').on(t.nextAt)],
);
