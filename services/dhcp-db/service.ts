import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const dhcpDbService: ServiceDef<typeof noConfig> = {
  name: 'dhcp-db',
  config: noConfig,
  schema: { name: 'dhcp_db', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'dhcp_db_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
