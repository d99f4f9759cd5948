import { fileURLToPath } from 'node:url';
import type { PoolClient } from 'pg';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { dnsConfig, listenPort, serverAddresses, transferPolicy, zoneSettings } from './config.js';
import { outbox } from './db/schema.js';
import { recordsChannel, servingState } from './db/store.js';
import { liveReverseZones } from './domain/records.js';
import { ResponseRateLimiter } from './domain/rrl.js';
import { buildSnapshot } from './domain/snapshot.js';
import { startConsumers } from './handlers.js';
import { createProjection } from './projection.js';
import { startResync } from './resync.js';
import { serveRpcs } from './rpcs.js';
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
  async start({ database: maybeDb, bus, log, config, clock }) {
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

    // Snapshot reloads are coalesced: a burst of changes costs one or two rebuilds, not one per change.
    let version = 0;
    let reloading: Promise<void> | null = null;
    let again = false;
    let reloadTimer: NodeJS.Timeout | null = null;
    let stopped = false;
    const reload = async () => {
      const state = await servingState(database.db);
      const live = new Set([
        domain,
        ...state.records.map((r) => r.zone),
        ...liveReverseZones(state.addresses.map((address) => ({ address }))),
      ]);
      const snap = buildSnapshot(
        ++version,
        state.zones.filter((z) => live.has(z.name)),
        state.records,
        settings,
      );
      engine.install(snap);
      const serial = snap.zones.get(domain)?.serial;
      log.debug(
        { version, zones: snap.zones.size, records: state.records.length, serial },
        'dns snapshot installed',
      );
    };
    const scheduleReload = () => {
      if (stopped) return;
      if (reloading) {
        again = true;
        return;
      }
      reloadTimer ??= setTimeout(() => {
        reloadTimer = null;
        reloading = reload()
          .catch((err: unknown) => log.error({ err }, 'dns snapshot reload failed; serving the previous one'))
          .finally(() => {
            reloading = null;
            if (again) {
              again = false;
              scheduleReload();
            }
          });
      }, 5);
    };

    const projection = createProjection({ database, bus, clock, log, domain, changed: scheduleReload });
    await projection.start({});
    await reload();

    let listener: PoolClient | null = null;
    try {
      listener = await database.pool.connect();
      listener.on('notification', scheduleReload);
      listener.on('error', (err) => log.warn({ err }, 'dns reload listener lost; relying on local changes'));
      await listener.query(`listen ${recordsChannel}`);
    } catch (err) {
      log.warn({ err }, 'cannot LISTEN for record changes; this instance only sees its own writes');
    }
    // A slow safety net in case a notification is lost (another instance's write, connection blip).
    const safety = setInterval(scheduleReload, 30_000);

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
        stopped = true;
        for (const s of subs) s.unsubscribe();
        await resync.stop();
        await consumers.stop();
        await dns.stop();
        clearInterval(safety);
        if (reloadTimer) clearTimeout(reloadTimer);
        await reloading;
        if (listener) {
          await listener.query(`unlisten ${recordsChannel}`).catch(() => undefined);
          listener.release();
        }
        await relay.stop();
      },
    };
  },
};
