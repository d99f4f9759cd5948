import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import { intFromEnv } from '../../shared/config.js';
import type { Database } from '../../shared/db/database.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { TokenCache } from './accounts.js';
import { createApp } from './app.js';
import { GatewayStore, tokenHash } from './db/store.js';
import { WebhookStore } from './db/webhooks.js';
import { EventStreams } from './routes/events.js';
import { listen, loadTls } from './tls.js';
import { WebhookConsumers, WebhookDispatcher } from './webhooks.js';

const gatewayConfig = z.object({
  CROWBAR_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  CROWBAR_HTTP_PORT: intFromEnv(0, 65535).default(3000),
  /** PEM files; with both, the port serves HTTPS (and plain HTTP for the node-facing routes only). */
  CROWBAR_TLS_CERT: z.string().min(1).optional(),
  CROWBAR_TLS_KEY: z.string().min(1).optional(),
  /** Operator tokens. Without an admin token the gateway makes one up and logs it once. */
  CROWBAR_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  CROWBAR_READONLY_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Checks the discovery tokens the provisioner mints; unset, machines cannot register. */
  CROWBAR_DISCOVERY_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  /** The cluster domain (as dns-db's): new machines are named d<mac>.<domain>. */
  CROWBAR_DNS_DOMAIN: z
    .string()
    .regex(/^([a-z0-9-]{1,63}\.)+[a-z]{2,63}$/, 'must be a DNS name such as crowbar.internal')
    .default('crowbar.internal'),
  /** Event stream (`GET /api/v2/events`): heartbeat interval, and the bytes a client may fall behind. */
  /** Node-facing routes (registration, node reports): requests per second per source address, and burst. */
  CROWBAR_NODE_API_RATE: intFromEnv(1, 100_000).default(20),
  CROWBAR_NODE_API_BURST: intFromEnv(1, 100_000).default(100),
  CROWBAR_SSE_HEARTBEAT_MS: intFromEnv(100, 600_000).default(15_000),
  CROWBAR_SSE_MAX_BUFFER: intFromEnv(4096, 1 << 30).default(1 << 20),
  /** Webhooks: attempts at one event before it is dead-lettered, backoff from/to, receiver timeout, poll. */
  CROWBAR_WEBHOOK_ATTEMPTS: intFromEnv(1, 1000).default(10),
  CROWBAR_WEBHOOK_BACKOFF_MS: intFromEnv(1, 3_600_000).default(1000),
  CROWBAR_WEBHOOK_BACKOFF_MAX_MS: intFromEnv(1, 3_600_000).default(60_000),
  CROWBAR_WEBHOOK_TIMEOUT_MS: intFromEnv(100, 600_000).default(10_000),
  CROWBAR_WEBHOOK_POLL_MS: intFromEnv(50, 600_000).default(1000),
  /** Webhooks: events each webhook's delivery log keeps (the newest). */
  CROWBAR_WEBHOOK_LOG_KEEP: intFromEnv(1, 1_000_000).default(1000),
  /** The web UI's build; the default is where infra/ui-build.mjs puts it. */
  CROWBAR_UI_DIR: z
    .string()
    .min(1)
    .default(fileURLToPath(new URL('../../node_modules/.cache/crowbar-ui/dist', import.meta.url))),
});

export const gatewayService: ServiceDef<typeof gatewayConfig> = {
  name: 'gateway',
  config: gatewayConfig,
  /** Named operator tokens and the audit log: every gateway process shares them through this schema. */
  schema: { name: 'gateway', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ config, bus, log, clock, instance, version, database }) {
    const startedAt = clock.now();
    // Checked before anything else: a bad certificate or key stops the gateway with one sentence.
    const tls = loadTls(config.CROWBAR_TLS_CERT, config.CROWBAR_TLS_KEY);
    const adminToken = config.CROWBAR_ADMIN_TOKEN ?? randomBytes(24).toString('base64url');
    if (!config.CROWBAR_ADMIN_TOKEN)
      log.warn('CROWBAR_ADMIN_TOKEN not set; generated a token for this run (see the launcher output)');
    // The launcher's tokens are the first named ones (`launcher`, `launcher-read-only`), revocable like any.
    const store = database ? new GatewayStore(database) : undefined;
    await store?.ensureToken('launcher', 'admin', tokenHash(adminToken));
    if (config.CROWBAR_READONLY_TOKEN)
      await store?.ensureToken('launcher-read-only', 'read-only', tokenHash(config.CROWBAR_READONLY_TOKEN));
    const streams = new EventStreams();
    const webhooks = store
      ? makeWebhooks(config, { bus, log, clock, version, database: database! })
      : undefined;
    const app = createApp({
      bus,
      events: {
        streams,
        heartbeatMs: config.CROWBAR_SSE_HEARTBEAT_MS,
        maxBufferBytes: config.CROWBAR_SSE_MAX_BUFFER,
      },
      log,
      clock,
      adminToken,
      readOnlyToken: config.CROWBAR_READONLY_TOKEN,
      discoverySecret: config.CROWBAR_DISCOVERY_SECRET,
      domain: config.CROWBAR_DNS_DOMAIN,
      uiDir: config.CROWBAR_UI_DIR,
      ...(store ? { accounts: { store, tokens: new TokenCache(store, clock) } } : {}),
      ...(webhooks ? { webhooks } : {}),
      nodeApiRate: { perSecond: config.CROWBAR_NODE_API_RATE, burst: config.CROWBAR_NODE_API_BURST },
      self: async () => ({
        service: 'gateway',
        instance,
        version,
        status: 'up',
        startedAt: startedAt.toISOString(),
        uptimeSeconds: (clock.now().getTime() - startedAt.getTime()) / 1000,
        detail: {},
      }),
    });
    const server = await listen(app, { host: config.CROWBAR_HTTP_HOST, port: config.CROWBAR_HTTP_PORT, tls });
    const port = server.port;
    webhooks?.dispatcher.start();
    const scheme = tls ? 'https' : 'http';
    if (tls && tls.notAfter.getTime() < clock.now().getTime())
      log.warn({ notAfter: tls.notAfter.toISOString() }, 'the TLS certificate has expired');
    log.info(
      {
        url: `${scheme}://${config.CROWBAR_HTTP_HOST}:${port}`,
        ...(tls ? { fingerprint: tls.fingerprint } : {}),
      },
      'gateway listening',
    );
    return {
      detail: () => ({ port, scheme, eventStreams: streams.size, webhooks: webhooks?.dispatcher.size ?? 0 }),
      stop: async () => {
        // Deliveries in flight finish and are acknowledged while NATS is still there.
        await webhooks?.dispatcher.stop();
        // Open event streams would keep the server from closing.
        streams.closeAll();
        await server.close();
      },
    };
  },
};

/** Webhook deliveries from this process (every gateway takes part; see webhooks.ts). */
function makeWebhooks(
  config: z.infer<typeof gatewayConfig>,
  d: { bus: Bus; log: Logger; clock: Clock; version: string; database: Database },
) {
  const opts = {
    attempts: config.CROWBAR_WEBHOOK_ATTEMPTS,
    backoffMs: config.CROWBAR_WEBHOOK_BACKOFF_MS,
    backoffMaxMs: config.CROWBAR_WEBHOOK_BACKOFF_MAX_MS,
    timeoutMs: config.CROWBAR_WEBHOOK_TIMEOUT_MS,
    pollMs: config.CROWBAR_WEBHOOK_POLL_MS,
    logKeep: config.CROWBAR_WEBHOOK_LOG_KEEP,
  };
  const store = new WebhookStore(d.database);
  const consumers = new WebhookConsumers(d.bus, opts);
  const dispatcher = new WebhookDispatcher({
    bus: d.bus,
    store,
    consumers,
    opts,
    log: d.log.child({ component: 'webhooks' }),
    clock: d.clock,
    userAgent: `crowbar-webhooks/${d.version}`,
  });
  return { store, consumers, dispatcher };
}
