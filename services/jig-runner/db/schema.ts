import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The jig_runner schema: written only by the jig-runner service. */
export const jigrunnerSchema = pgSchema('jig_runner');
export const outbox = outboxTable(jigrunnerSchema);
