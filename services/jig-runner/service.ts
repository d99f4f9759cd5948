import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { consume } from '../../shared/bus/consume.js';
import { causedBy } from '../../shared/bus/envelope.js';
import { annealerMessages } from '../../shared/catalogue/index.js';
import { intFromEnv } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { createFaults } from '../../shared/fault.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';
import { createJobRunner } from './run.js';
import { createRunLocks } from './run-lock.js';

const jigRunnerConfig = z.object({
  /** Jobs this process runs at once; the global cap is the annealer's business. */
  CROWBAR_JIG_CONCURRENCY: intFromEnv(1, 1000).default(16),
  /** The cluster's SSH private key (OpenSSH format) for the script jig. */
  CROWBAR_SSH_KEY: z.string().min(1).optional(),
  /** Ask aliveness-probe about the node after each script run (reference §3.3). */
  CROWBAR_PROBE_AFTER_RUN: z.enum(['true', 'false']).default('true'),
  /** How long a job may go without a keep-alive before JetStream hands it to another runner. */
  CROWBAR_JIG_ACK_WAIT_MS: intFromEnv(1000, 600_000).default(30_000),
  /**
   * Keep-alives for running jobs (every ack wait / 3). Only a test turns them off, to see a redelivery
   * of a run in progress fenced.
   */
  CROWBAR_JIG_KEEPALIVE: z.enum(['true', 'false']).default('true'),
});

export const jigRunnerService: ServiceDef<typeof jigRunnerConfig> = {
  name: 'jig-runner',
  config: jigRunnerConfig,
  schema: {
    name: 'jig_runner',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log, config, instance }) {
    const db = database!.db;
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'jig_runner_outbox',
      bus,
      log,
      faults: createFaults(config, log),
    });
    const locks = createRunLocks({ url: config.DATABASE_URL, applicationName: instance, log });
    let cachedKey: string | null = null;
    const key = () => {
      if (!config.CROWBAR_SSH_KEY)
        throw new Error('CROWBAR_SSH_KEY is not set: the script jig needs the cluster SSH key');
      cachedKey ??= readFileSync(config.CROWBAR_SSH_KEY, 'utf8');
      return cachedKey;
    };
    const once = createJobRunner({
      bus,
      db,
      instance,
      relay,
      locks,
      key,
      settings: {
        ackWaitMs: config.CROWBAR_JIG_ACK_WAIT_MS,
        keepAlive: config.CROWBAR_JIG_KEEPALIVE === 'true',
        probeAfterRun: config.CROWBAR_PROBE_AFTER_RUN === 'true',
      },
    });
    const consumer = await consume(bus, {
      decl: {
        stream: 'JIG',
        durable: 'jig-runner',
        ackWaitMs: config.CROWBAR_JIG_ACK_WAIT_MS,
        maxDeliver: 3,
      },
      log,
      concurrency: config.CROWBAR_JIG_CONCURRENCY,
      handlers: [
        [
          annealerMessages.jigRun,
          async (job, env, ctx) => once(job, ctx.log, ctx.keepAlive, ctx.attempt, causedBy(env)),
        ],
      ],
    });
    return {
      detail: () => ({ ...consumer.stats }),
      async stop() {
        await consumer.stop();
        await relay.stop();
        await locks.close();
      },
    };
  },
};
