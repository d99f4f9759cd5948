import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { annealerMessages } from '../../shared/catalogue/index.js';
import { intFromEnv } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { createFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { outbox } from './db/schema.js';
import { startConsumers } from './handlers.js';
import { createScheduler, type Scheduler } from './scheduler.js';

const annealerConfig = z.object({
  /** Global cap on runs in flight (DESIGN §4, #13), enforced by the scheduler. */
  CROWBAR_ANNEAL_CAP: intFromEnv(1, 10_000).default(10),
  /** Extra room for event-driven re-runs of ACTIVE noderoles. */
  CROWBAR_ANNEAL_HIGH_CAP: intFromEnv(0, 1000).default(2),
  CROWBAR_ANNEAL_PASS_MS: intFromEnv(50, 60_000).default(1000),
  CROWBAR_ANNEAL_SWEEP_MS: intFromEnv(100, 600_000).default(5000),
  /** Seconds past a role's timeout before a silent run is failed by the sweep. */
  CROWBAR_RUN_GRACE_SECONDS: intFromEnv(0, 3600).default(30),
  /** Seconds a claim may wait for inventory to start it (retried meanwhile) before the sweep requeues it. */
  CROWBAR_CLAIM_TIMEOUT_SECONDS: intFromEnv(2, 3600).default(60),
  /** How long a scheduling pass waits for the cap lock another annealer holds before retrying next pass. */
  CROWBAR_ANNEAL_LOCK_TIMEOUT_MS: intFromEnv(100, 600_000).default(5000),
  /** A claim transaction left idle this long (its annealer stopped) is ended by PostgreSQL, freeing the cap lock. */
  CROWBAR_ANNEAL_IDLE_TX_TIMEOUT_MS: intFromEnv(100, 600_000).default(10_000),
  /** Ack wait of the annealer's command queue: how soon a result taken by an annealer that died goes to another. */
  CROWBAR_ANNEAL_ACK_WAIT_MS: intFromEnv(1000, 600_000).default(30_000),
});

/**
 * Scheduling passes one at a time: a kick while a pass runs asks for one more after it, so a burst of
 * events costs at most two passes.
 */
function passLoop(scheduler: Scheduler, log: Logger) {
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  // What health shows: since when the pass under way runs, and how many ended and failed.
  let since: number | null = null;
  let passes = 0;
  let failures = 0;
  const kick = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        since = Date.now();
        try {
          await scheduler.pass();
        } catch (err) {
          failures++;
          log.warn({ err }, 'anneal pass failed; will retry');
        }
        passes++;
        since = null;
      } while (again && !stopped);
    })().finally(() => {
      running = null;
    });
  };
  return {
    kick,
    /** No pass starts after this. */
    stop: () => {
      stopped = true;
    },
    detail: () => ({ passes, failures, passRunningMs: since === null ? null : Date.now() - since }),
    /** Resolves when the pass under way (if any) has ended. */
    idle: async () => {
      await running;
    },
  };
}

export const annealerService: ServiceDef<typeof annealerConfig> = {
  name: 'annealer',
  config: annealerConfig,
  schema: { name: 'annealer', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log, config }) {
    const faults = createFaults(config, log);
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'annealer_outbox',
      bus,
      log,
      faults,
    });
    const scheduler = createScheduler({
      db: database!.db,
      bus,
      log,
      config: {
        cap: config.CROWBAR_ANNEAL_CAP,
        highCap: config.CROWBAR_ANNEAL_HIGH_CAP,
        graceSeconds: config.CROWBAR_RUN_GRACE_SECONDS,
        claimTimeoutSeconds: config.CROWBAR_CLAIM_TIMEOUT_SECONDS,
        lockTimeoutMs: config.CROWBAR_ANNEAL_LOCK_TIMEOUT_MS,
        idleTxTimeoutMs: config.CROWBAR_ANNEAL_IDLE_TX_TIMEOUT_MS,
      },
      outbox: { table: outbox, flush: () => void relay.flush() },
      faults,
    });
    const loop = passLoop(scheduler, log);
    const consumers = await startConsumers({
      bus,
      log,
      scheduler,
      kick: loop.kick,
      opts: { ackWaitMs: config.CROWBAR_ANNEAL_ACK_WAIT_MS, cap: config.CROWBAR_ANNEAL_CAP },
    });
    bus.serve(annealerMessages.beginRun, (req) => scheduler.begin(req));
    bus.serve(annealerMessages.runs, async (req) =>
      scheduler.list(req.active, req.limit, req.cursor === undefined ? undefined : Number(req.cursor)),
    );
    const passTimer = setInterval(loop.kick, config.CROWBAR_ANNEAL_PASS_MS);
    const sweepTimer = setInterval(() => {
      scheduler.sweep().then(
        (n) => n > 0 && loop.kick(),
        (err: unknown) => log.warn({ err }, 'sweep failed'),
      );
    }, config.CROWBAR_ANNEAL_SWEEP_MS);
    loop.kick();

    return {
      detail: () => ({
        cap: config.CROWBAR_ANNEAL_CAP,
        ...loop.detail(),
        consumers: consumers.map((c) => ({ ...c.stats })),
      }),
      async stop() {
        loop.stop();
        clearInterval(passTimer);
        clearInterval(sweepTimer);
        for (const c of consumers) await c.stop();
        await loop.idle();
        await scheduler.idle(true);
        await relay.stop();
      },
    };
  },
};
