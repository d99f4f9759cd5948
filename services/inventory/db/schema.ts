import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { Json as JsonValue } from '../../../shared/catalogue/index.js';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The inventory schema: written only by the inventory service. */
export const inventorySchema = pgSchema('inventory');
export const outbox = outboxTable(inventorySchema);

type Json = Record<string, unknown>;
const id = () => bigserial('id', { mode: 'number' }).primaryKey();
const ref = (name: string) => integer(name);
const json = (name: string) => jsonb(name).$type<Json>().notNull().default({});
const stamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
};

export const barclamps = inventorySchema.table('barclamps', {
  id: id(),
  name: text('name').notNull().unique(),
  description: text('description').notNull().default(''),
  version: text('version').notNull().default('0'),
  sourcePath: text('source_path').notNull().default(''),
  cfg: json('cfg'),
  ...stamps,
});

export const roles = inventorySchema.table('roles', {
  id: id(),
  name: text('name').notNull().unique(),
  barclampId: ref('barclamp_id')
    .notNull()
    .references(() => barclamps.id),
  description: text('description').notNull().default(''),
  jig: text('jig').notNull(),
  /** Service answering runs of this role (service-provided jig), else null. */
  owner: text('owner'),
  flags: text('flags').array().notNull().default(sql`'{}'`),
  requires: text('requires').array().notNull().default(sql`'{}'`),
  wantsAttribs: text('wants_attribs').array().notNull().default(sql`'{}'`),
  provides: text('provides').array().notNull().default(sql`'{}'`),
  conflicts: text('conflicts').array().notNull().default(sql`'{}'`),
  template: json('template'),
  /** The role's scripts for the script jig, file name → content, loaded from the barclamp at import. */
  scripts: jsonb('scripts').$type<Record<string, string>>().notNull().default({}),
  timeoutSeconds: integer('timeout_seconds').notNull().default(600),
  ...stamps,
});

export const attribs = inventorySchema.table('attribs', {
  id: id(),
  name: text('name').notNull().unique(),
  barclampId: ref('barclamp_id').notNull(),
  roleId: ref('role_id'),
  description: text('description').notNull().default(''),
  /** Slash-separated path of the value inside a data blob, e.g. crowbar/access/keys. */
  map: text('map').notNull(),
  schema: json('schema'),
  defaultValue: jsonb('default_value').$type<JsonValue>(),
  writable: boolean('writable').notNull().default(true),
});

export const deployments = inventorySchema.table(
  'deployments',
  {
    id: id(),
    name: text('name').notNull().unique(),
    description: text('description').notNull().default(''),
    parentId: ref('parent_id'),
    state: text('state').$type<'proposed' | 'committed'>().notNull().default('proposed'),
    system: boolean('system').notNull().default(false),
    ...stamps,
  },
  (t) => [index('deployments_parent').on(t.parentId)],
);

export const deploymentRoles = inventorySchema.table(
  'deployment_roles',
  {
    id: id(),
    deploymentId: ref('deployment_id')
      .notNull()
      .references(() => deployments.id),
    roleId: ref('role_id')
      .notNull()
      .references(() => roles.id),
    proposedData: json('proposed_data'),
    committedData: json('committed_data'),
    wall: json('wall'),
    ...stamps,
  },
  (t) => [uniqueIndex('deployment_roles_pair').on(t.deploymentId, t.roleId)],
);

export const nodes = inventorySchema.table('nodes', {
  id: id(),
  name: text('name').notNull().unique(),
  description: text('description').notNull().default(''),
  admin: boolean('admin').notNull().default(false),
  system: boolean('system').notNull().default(false),
  alive: boolean('alive').notNull().default(false),
  available: boolean('available').notNull().default(false),
  bootenv: text('bootenv').notNull().default('sledgehammer'),
  deploymentId: ref('deployment_id')
    .notNull()
    .references(() => deployments.id),
  discovery: json('discovery'),
  hint: json('hint'),
  quirks: text('quirks').array().notNull().default(sql`'{}'`),
  sshHostKey: text('ssh_host_key'),
  credentialHash: text('credential_hash'),
  aliveReason: text('alive_reason').notNull().default(''),
  version: integer('version').notNull().default(1),
  ...stamps,
});

export const noderoles = inventorySchema.table(
  'noderoles',
  {
    id: id(),
    nodeId: ref('node_id')
      .notNull()
      .references(() => nodes.id),
    roleId: ref('role_id')
      .notNull()
      .references(() => roles.id),
    deploymentId: ref('deployment_id')
      .notNull()
      .references(() => deployments.id),
    state: text('state').notNull().default('proposed'),
    cohort: integer('cohort').notNull().default(0),
    runCount: integer('run_count').notNull().default(0),
    runlog: text('runlog').notNull().default(''),
    available: boolean('available').notNull().default(true),
    proposedData: json('proposed_data'),
    committedData: json('committed_data'),
    sysdata: json('sysdata'),
    wall: json('wall'),
    /** Fencing token of the run currently allowed to finish this noderole. */
    runToken: text('run_token'),
    version: integer('version').notNull().default(1),
    ...stamps,
  },
  (t) => [
    uniqueIndex('noderoles_node_role').on(t.nodeId, t.roleId),
    index('noderoles_state').on(t.state),
    // The annealer's two questions, answered from small indexes whatever the table statistics say:
    // what is waiting to run, and which nodes are busy (a run going or an error to clear).
    index('noderoles_todo').on(t.nodeId, t.cohort, t.id).where(sql`state = 'todo'`),
    index('noderoles_busy').on(t.nodeId).where(sql`state in ('transition', 'error')`),
    index('noderoles_deployment').on(t.deploymentId),
  ],
);

export const noderoleEdges = inventorySchema.table(
  'noderole_edges',
  {
    parentId: ref('parent_id')
      .notNull()
      .references(() => noderoles.id, { onDelete: 'cascade' }),
    childId: ref('child_id')
      .notNull()
      .references(() => noderoles.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.parentId, t.childId] }), index('noderole_edges_child').on(t.childId)],
);
