import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const alivenessProbeService: ServiceDef<typeof noConfig> = {
  name: 'aliveness-probe',
  config: noConfig,
  schema: {
    name: 'aliveness_probe',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'aliveness_probe_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
