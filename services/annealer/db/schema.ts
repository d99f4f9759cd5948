import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The annealer schema: written only by the annealer service. */
export const annealerSchema = pgSchema('annealer');
export const outbox = outboxTable(annealerSchema);
