import { bigserial, boolean, index, integer, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The jig_runner schema: run logs, written only by jig-runner processes. */
export const jigRunnerSchema = pgSchema('jig_runner');
export const outbox = outboxTable(jigRunnerSchema);

export const runlogs = jigRunnerSchema.table(
  'runlogs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    runId: integer('run_id').notNull(),
    noderoleId: integer('noderole_id').notNull(),
    attempt: integer('attempt').notNull(),
    runner: text('runner').notNull(),
    jig: text('jig').notNull(),
    ok: boolean('ok'),
    /** Bounded: the last 256 KiB of output. */
    log: text('log').notNull().default(''),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [index('runlogs_noderole').on(t.noderoleId), index('runlogs_run').on(t.runId)],
);
