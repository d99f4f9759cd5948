import { fileURLToPath } from 'node:url';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { noConfig, type ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';

export const jigRunnerService: ServiceDef<typeof noConfig> = {
  name: 'jig-runner',
  config: noConfig,
  schema: {
    name: 'jig_runner',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log }) {
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'jig_runner_outbox',
      bus,
      log,
    });
    return {
      stop: () => relay.stop(),
    };
  },
};
