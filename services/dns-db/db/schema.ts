import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The dns_db schema: written only by the dns-db service. */
export const dnsdbSchema = pgSchema('dns_db');
export const outbox = outboxTable(dnsdbSchema);
