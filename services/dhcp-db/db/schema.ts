import { pgSchema } from 'drizzle-orm/pg-core';
import { outboxTable } from '../../../shared/db/outbox.js';

/** The dhcp_db schema: written only by the dhcp-db service. */
export const dhcpdbSchema = pgSchema('dhcp_db');
export const outbox = outboxTable(dhcpdbSchema);
