import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const inventoryService: ServiceDef<typeof noConfig> = {
  name: 'inventory',
  config: noConfig,
  schema: { name: 'inventory', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'inventory_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
