import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgSchema,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { JsonObject } from '../../../shared/catalogue/json.js';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The annealer schema: run claims, written only by the annealer service. */
export const annealerSchema = pgSchema('annealer');
export const outbox = outboxTable(annealerSchema);

/**
 * One row per run. `claimed` → `running` → `done`/`failed`/`cancelled`; `queued` waits in the
 * high-priority lane. The partial unique indexes make "one run per node" and "one run per noderole" facts
 * of the database, whatever the number of annealer processes.
 */
export const runs = annealerSchema.table(
  'runs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    noderoleId: integer('noderole_id').notNull(),
    nodeId: integer('node_id').notNull(),
    lane: text('lane').$type<'normal' | 'high'>().notNull().default('normal'),
    state: text('state')
      .$type<'queued' | 'claimed' | 'running' | 'done' | 'failed' | 'cancelled'>()
      .notNull(),
    token: text('token').notNull(),
    role: text('role'),
    jig: text('jig'),
    destructive: boolean('destructive').notNull().default(false),
    data: jsonb('data').$type<Record<string, unknown>>(),
    /** The runner's result ({ok, wall, runlog}) as it arrived, kept until inventory has taken it. */
    outcome: jsonb('outcome').$type<{ ok: boolean; wall: JsonObject | null; runlog: string }>(),
    /** How many times a jig runner began this run (a second begin means the first runner died). */
    begins: integer('begins').notNull().default(0),
    reason: text('reason').notNull().default(''),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
    deadline: timestamp('deadline', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('runs_one_per_node').on(t.nodeId).where(sql`state in ('claimed', 'running')`),
    uniqueIndex('runs_one_per_noderole')
      .on(t.noderoleId)
      .where(sql`state in ('queued', 'claimed', 'running')`),
    index('runs_state').on(t.state),
    // The high lane's queue, read every pass: small, so cheap to scan whatever the table's statistics say.
    index('runs_queued').on(t.id).where(sql`state = 'queued'`),
  ],
);
