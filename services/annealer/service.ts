import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const annealerService: ServiceDef<typeof noConfig> = {
  name: 'annealer',
  config: noConfig,
  schema: { name: 'annealer', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'annealer_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
