import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { alivenessMessages } from '../../shared/catalogue/index.js';
import { ConfigError, intFromEnv } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { NotFoundError } from '../../shared/errors.js';
import { createFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { isUsablePrivateKey } from '../../shared/ssh/index.js';
import { outbox } from './db/schema.js';
import { startProber } from './prober.js';
import { checkFping } from './probes/icmp.js';
import { resyncFromOwners, startProjection } from './projection.js';
import { createStore, outboxChannel } from './store.js';

const probeConfig = z.object({
  /** Path of the cluster's private key (OpenSSH format). Unset: ICMP alone decides aliveness. */
  CROWBAR_SSH_KEY: z.string().min(1).optional(),
  CROWBAR_PROBE_INTERVAL_MS: intFromEnv(200, 3_600_000).default(10_000),
  /** Consecutive failed probes that make a node dead; one passed probe makes it alive. */
  CROWBAR_PROBE_FAILURES: intFromEnv(1, 100).default(3),
  CROWBAR_PROBE_ICMP_TIMEOUT_MS: intFromEnv(50, 60_000).default(1000),
  CROWBAR_PROBE_ICMP_RETRIES: intFromEnv(0, 10).default(1),
  CROWBAR_PROBE_ICMP_INTERVAL_MS: intFromEnv(0, 1000).default(1),
  /** Recovery check of a dead node: this many echo requests, this far apart, all answered. */
  CROWBAR_PROBE_RECOVERY_ECHOES: intFromEnv(1, 20).default(3),
  CROWBAR_PROBE_RECOVERY_SPACING_MS: intFromEnv(20, 10_000).default(500),
  CROWBAR_PROBE_SSH_TIMEOUT_MS: intFromEnv(200, 120_000).default(5000),
  CROWBAR_PROBE_SSH_PORT: intFromEnv(1, 65_535).default(22),
  /**
   * Log in to an alive node every this many sweeps (ICMP still every sweep); dead and suspect nodes get
   * SSH every time. Lets a large fleet keep a short interval: a login costs ~10 ms of prober CPU.
   */
  CROWBAR_PROBE_SSH_EVERY: intFromEnv(1, 1000).default(1),
  /** SSH logins in flight at once during a sweep. */
  CROWBAR_PROBE_CONCURRENCY: intFromEnv(1, 1000).default(32),
  /** Probe records kept per node for the health view. */
  CROWBAR_PROBE_HISTORY: intFromEnv(10, 100_000).default(200),
  /** A sweeping instance silent this long (stopped, frozen) loses the sweep lock to a standby. */
  CROWBAR_PROBE_LEADER_TIMEOUT_MS: intFromEnv(1000, 3_600_000).default(30_000),
});

/** Reads and checks the cluster key once at start; the key text never reaches a log. */
function loadClusterKey(path: string | undefined): string | null {
  if (!path) return null;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `CROWBAR_SSH_KEY cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): ${path}`,
    ]);
  }
  if (!isUsablePrivateKey(text)) {
    throw new ConfigError([`CROWBAR_SSH_KEY is not an unencrypted OpenSSH private key: ${path}`]);
  }
  return text;
}

/** The prober's settings from the service's config (no SSH stage without the cluster key). */
function proberOptions(
  config: Parameters<ServiceDef<typeof probeConfig>['start']>[0]['config'],
  log: Logger,
  privateKey: string | null,
): Parameters<typeof startProber>[0]['options'] {
  return {
    intervalMs: config.CROWBAR_PROBE_INTERVAL_MS,
    sshEvery: config.CROWBAR_PROBE_SSH_EVERY,
    failuresToDead: config.CROWBAR_PROBE_FAILURES,
    historyKeep: config.CROWBAR_PROBE_HISTORY,
    leaderTimeoutMs: config.CROWBAR_PROBE_LEADER_TIMEOUT_MS,
    faults: createFaults(config, log),
    pipeline: {
      icmp: {
        timeoutMs: config.CROWBAR_PROBE_ICMP_TIMEOUT_MS,
        retries: config.CROWBAR_PROBE_ICMP_RETRIES,
        intervalMs: config.CROWBAR_PROBE_ICMP_INTERVAL_MS,
      },
      stability: {
        count: config.CROWBAR_PROBE_RECOVERY_ECHOES,
        periodMs: config.CROWBAR_PROBE_RECOVERY_SPACING_MS,
        timeoutMs: config.CROWBAR_PROBE_ICMP_TIMEOUT_MS,
      },
      ssh: privateKey
        ? {
            privateKey,
            port: config.CROWBAR_PROBE_SSH_PORT,
            timeoutMs: config.CROWBAR_PROBE_SSH_TIMEOUT_MS,
            concurrency: config.CROWBAR_PROBE_CONCURRENCY,
          }
        : null,
    },
  };
}

export const alivenessProbeService: ServiceDef<typeof probeConfig> = {
  name: 'aliveness-probe',
  config: probeConfig,
  schema: {
    name: 'aliveness_probe',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log, config, clock }) {
    const db = database!;
    const privateKey = loadClusterKey(config.CROWBAR_SSH_KEY);
    log.info({ fping: checkFping() }, 'ICMP stage ready');
    if (!privateKey) log.warn('CROWBAR_SSH_KEY not set: probing by ICMP only, no SSH login check');
    const store = createStore(db, bus);
    const relay = startOutboxRelay({ database: db, table: outbox, channel: outboxChannel, bus, log });
    const holdMs = config.CROWBAR_PROBE_FAILURES * config.CROWBAR_PROBE_INTERVAL_MS;
    const projection = await startProjection({ bus, store, log, holdMs });
    void resyncFromOwners(bus, store, log, clock.now());
    const prober = startProber({
      bus,
      store,
      database: db,
      log,
      clock,
      options: proberOptions(config, log, privateKey),
    });

    const known = async (nodeId: number) => {
      const [node] = await store.listNodes(nodeId);
      if (!node)
        throw new NotFoundError(`node ${nodeId} is not known to the aliveness probe`, { field: 'nodeId' });
      return node;
    };

    const subs = [
      bus.serve(alivenessMessages.probe, async ({ nodeId }) => {
        const node = await known(nodeId);
        if (node.system)
          return {
            nodeId,
            alive: node.alive,
            reason:
              'a system node (a phantom or the admin node): its aliveness is the control plane’s own; not probed',
            stage: 'none' as const,
            address: null,
            durationMs: 0,
            verdict: node.verdict,
          };
        const o = await prober.probeOne(node);
        return {
          nodeId,
          // A node that cannot be probed keeps inventory's word (the original counted such nodes alive).
          alive: o.ok ?? node.alive,
          reason: o.reason,
          stage: o.stage,
          address: o.address,
          durationMs: o.durationMs,
          verdict: o.verdict,
        };
      }),
      bus.serve(alivenessMessages.nodeHealth, async ({ nodeId, limit }) => {
        const node = await known(nodeId);
        const { state, history } = await store.health(nodeId, limit);
        const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
        return {
          nodeId,
          node: node.name,
          verdict: node.verdict,
          alive: node.alive,
          available: node.available,
          reporting: node.available && !node.system,
          consecutiveFailures: state?.failures ?? 0,
          reason: state?.reason ?? 'not probed yet',
          lastProbeAt: iso(state?.lastProbeAt),
          lastSuccessAt: iso(state?.lastSuccessAt),
          lastFailureAt: iso(state?.lastFailureAt),
          addresses: node.addresses,
          hostKeyPinned: node.sshHostKey !== null,
          history: history.map((h) => ({
            at: h.at.toISOString(),
            ok: h.ok,
            stage: h.stage as 'icmp' | 'ssh' | 'none',
            reason: h.reason,
            address: h.address,
            durationMs: h.durationMs,
            trigger: h.trigger as 'periodic' | 'on-demand',
          })),
        };
      }),
    ];

    return {
      detail: () => ({ ...prober.stats, ssh: privateKey !== null }),
      async stop() {
        for (const s of subs) s.unsubscribe();
        await prober.stop();
        await projection.stop();
        await relay.stop();
      },
    };
  },
};
