import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The inventory schema: written only by the inventory service. */
export const inventorySchema = pgSchema('inventory');
export const outbox = outboxTable(inventorySchema);
