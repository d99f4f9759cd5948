import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const dnsDbService: ServiceDef<typeof noConfig> = {
  name: 'dns-db',
  config: noConfig,
  schema: { name: 'dns_db', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'dns_db_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
