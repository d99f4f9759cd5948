import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The network_ipam schema: written only by the network-ipam service. */
export const networkipamSchema = pgSchema('network_ipam');
export const outbox = outboxTable(networkipamSchema);
