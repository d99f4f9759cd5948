import { fileURLToPath } from 'node:url';
import type { PoolClient } from 'pg';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { dnsConfig, listenPort, serverAddresses, transferPolicy, zoneSettings } from './config.js';
import { outbox } from './db/schema.js';
import { recordsChannel } from './db/store.js';
import { ResponseRateLimiter } from './domain/rrl.js';
import { startConsumers } from './handlers.js';
import { createProjection } from './projection.js';
import { startResync } from './resync.js';
import { serveRpcs } from './rpcs.js';
import { createServedState } from './served.js';
import { DnsEngine } from './server/engine.js';
import { listenDns } from './server/listen.js';

/**
 * dns-db: projects node names and allocations into zones (PostgreSQL is the truth) and serves them from
 * an in-memory snapshot with our own authoritative server. Every instance serves; writes from any
 * instance reach all of them through NOTIFY on dns_db_records.
 */
export const dnsDbService: ServiceDef<typeof dnsConfig> = {
  name: 'dns-db',
  config: dnsConfig,
  schema: { name: 'dns_db', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database: maybeDb, bus, log, config, clock, instance }) {
    const database = maybeDb!;
    const domain = config.CROWBAR_DNS_DOMAIN;
    const settings = zoneSettings(config);
    const servers = serverAddresses(config);
    const engine = new DnsEngine({
      maxUdp: config.CROWBAR_DNS_MAX_UDP,
      transferAllowed: transferPolicy(config),
    });
    const rrl = new ResponseRateLimiter({
      ratePerSecond: config.CROWBAR_DNS_RRL_RATE,
      slip: config.CROWBAR_DNS_RRL_SLIP,
      now: () => clock.now().getTime(),
    });

    const served = createServedState({ database, engine, settings, domain, log });
    const projection = createProjection({
      database,
      bus,
      clock,
      log,
      domain,
      instance,
      changed: served.apply,
    });
    let listener: PoolClient | null = null;
    try {
      listener = await database.pool.connect();
      listener.on('notification', (n) => {
        if (n.payload === instance) return;
        projection.invalidate();
        void served.load();
      });
      listener.on('error', (err) => log.warn({ err }, 'dns reload listener lost; relying on local changes'));
      await listener.query(`listen ${recordsChannel}`);
    } catch (err) {
      log.warn({ err }, 'cannot LISTEN for record changes; this instance only sees its own writes');
    }
    // Listening first: another instance's write during our start is not missed.
    await projection.start({});
    await served.load();
    // A slow safety net in case a notification is lost (another instance's write, connection blip).
    const safety = setInterval(() => void served.load(), 30_000);

    const dns = listenDns({
      addresses: config.CROWBAR_DNS_ADDRESS,
      port: listenPort(config),
      engine,
      rrl,
      tcpIdleMs: config.CROWBAR_DNS_TCP_IDLE_MS,
      maxTcpConnections: 256,
      retryBindMs: 30_000,
      log,
    });
    const relay = startOutboxRelay({ database, table: outbox, channel: 'dns_db_outbox', bus, log });
    const consumers = await startConsumers(bus, projection, log);
    const resync = startResync({ bus, projection, clock, log, intervalMs: config.CROWBAR_DNS_RESYNC_MS });
    const subs = serveRpcs({
      bus,
      database,
      projection,
      log,
      domain,
      servers,
      settings,
      snapshot: () => engine.current,
      resync: () => resync.now(),
    });
    log.info(
      {
        domain,
        servers,
        rrlRate: config.CROWBAR_DNS_RRL_RATE,
        transfersAllowed: config.CROWBAR_DNS_XFR_ALLOW,
      },
      'dns-db ready',
    );

    return {
      detail: () => ({
        domain,
        dnsPort: dns.port(),
        listening: dns.status(),
        serial: engine.current.zones.get(domain)?.serial ?? null,
        zones: engine.current.zones.size,
        snapshotVersion: engine.current.version,
        queries: { ...engine.stats, ...dns.stats, rrl: rrl.stats },
        consumers: consumers.stats(),
        lastResync: resync.last(),
      }),
      async stop() {
        for (const s of subs) s.unsubscribe();
        await resync.stop();
        await consumers.stop();
        await dns.stop();
        clearInterval(safety);
        await served.stop();
        if (listener) {
          await listener.query(`unlisten ${recordsChannel}`).catch(() => undefined);
          listener.release();
        }
        await relay.stop();
      },
    };
  },
};
