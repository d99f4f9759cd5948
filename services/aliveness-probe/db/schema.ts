import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The aliveness_probe schema: written only by the aliveness-probe service. */
export const alivenessprobeSchema = pgSchema('aliveness_probe');
export const outbox = outboxTable(alivenessprobeSchema);
