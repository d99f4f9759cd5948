import { fileURLToPath } from 'node:url';
import type { PoolClient } from 'pg';
import type { Bus } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import {
  type BootMap,
  consumers,
  dhcpMessages,
  dnsMessages,
  provisionerMessages,
} from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { type DhcpConfig, defaultBootMap, dhcpConfig } from './config.js';
import { outbox } from './db/schema.js';
import * as store from './db/store.js';
import { intToIp, ipToInt } from './domain/ipv4.js';
import { readOwners, startConsumers } from './handlers.js';
import { createLeaseWriter } from './leases.js';
import { createProjection } from './projection.js';
import { serveRpcs } from './rpcs.js';
import { createEngine, type EngineSettings } from './server/engine.js';
import { LeaseTable } from './server/lease-table.js';
import { startServer } from './server/server.js';
import { nativeLoadProblem } from './server/socket.js';

/**
 * dhcp-db: projects nodes (MACs, bootenv), allocations and networks into reservations and pools, and
 * serves them with its own DHCPv4 server. Leases live in PostgreSQL, each written before its ACK.
 */
export const dhcpDbService: ServiceDef<typeof dhcpConfig> = {
  name: 'dhcp-db',
  config: dhcpConfig,
  schema: { name: 'dhcp_db', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database: maybeDb, bus, log, config, clock, instance }) {
    const database = maybeDb!;
    const problem = nativeLoadProblem();
    if (problem) throw new Error(problem);
    const now = () => clock.now().getTime();
    let server: ReturnType<typeof startServer> | null = null;
    const projection = createProjection({ database, instance, log, changed: () => server?.reconcile() });
    const peers = await listenForPeerWrites(database, instance, projection, log);
    await projection.reload();

    const table = new LeaseTable(now);
    table.load(await store.loadActiveLeases(database.db));
    let relay: ReturnType<typeof startOutboxRelay> | null = null;
    const writer = createLeaseWriter({
      kick: () => void relay?.flush(),
      database,
      bus,
      table,
      projection,
      log,
      declineHoldMs: config.CROWBAR_DHCP_DECLINE_HOLD_S * 1000,
      now,
    });
    const boot = bootMapSource(bus, config, log);
    const dns = dnsSource(bus, log);
    const engine = createEngine({
      view: projection.view,
      leases: table,
      bind: writer.bind,
      decline: writer.decline,
      release: writer.release,
      bootMap: boot.current,
      dns: dns.current,
      offered: offeredEvents(bus, now),
      settings: engineSettings(config),
      now,
    });
    const running = startServer({
      engine,
      view: projection.view,
      interfaces: config.CROWBAR_DHCP_INTERFACES ?? null,
      port: config.CROWBAR_DHCP_PORT,
      log,
    });
    server = running;
    relay = startOutboxRelay({ database, table: outbox, channel: store.outboxChannel, bus, log });
    const inputs = await startConsumers(bus, projection, log);
    const bootConsumer = await consume(bus, {
      decl: consumers.events('dhcp-db-bootmap', 5),
      log,
      concurrency: 1,
      handlers: [[provisionerMessages.bootMapChanged, async (d) => boot.offer(d.map, 'provisioner')]],
    });
    const resync = startResync(bus, projection, config, log);
    const expiry = startExpiry(writer, config, log);

    const stats = () => serverStats(running, table, boot, dns);
    const subs = serveRpcs({ bus, database, projection, writer, log, stats, convergeMs: 30_000 });
    log.info(
      { interfaces: config.CROWBAR_DHCP_INTERFACES ?? 'admin networks', port: config.CROWBAR_DHCP_PORT },
      'dhcp-db ready',
    );

    return {
      detail: () => ({ ...stats(), consumers: inputs.stats(), projectionVersion: projection.version() }),
      async stop() {
        resync.stop();
        expiry.stop();
        for (const s of subs) s.unsubscribe();
        running.stop();
        boot.stop();
        dns.stop();
        await bootConsumer.stop();
        await inputs.stop();
        await peers.stop();
        await relay?.stop();
      },
    };
  },
};

type Projection = ReturnType<typeof createProjection>;

/** Other instances' projection writes: reload (coalesced) so every instance serves the same view. */
async function listenForPeerWrites(
  database: Database,
  instance: string,
  projection: Projection,
  log: Logger,
) {
  let listener: PoolClient | null = null;
  let reloading: Promise<void> | null = null;
  const reloadSoon = () => {
    reloading ??= new Promise<void>((r) => setTimeout(r, 50))
      .then(() => projection.reload())
      .catch((err: unknown) => log.warn({ err }, 'dhcp projection reload failed'))
      .finally(() => {
        reloading = null;
      });
  };
  try {
    listener = await database.pool.connect();
    listener.on('notification', (n) => n.payload !== instance && reloadSoon());
    listener.on('error', (err) => log.warn({ err }, 'dhcp reload listener lost'));
    await listener.query(`listen ${store.projectionChannel}`);
  } catch (err) {
    log.warn({ err }, 'cannot LISTEN for projection changes; this instance only sees its own writes');
  }
  return {
    /** Waits for a reload under way, then gives the connection back. */
    async stop() {
      await reloading;
      if (listener) {
        await listener.query(`unlisten ${store.projectionChannel}`).catch(() => undefined);
        listener.release();
      }
    },
  };
}

function engineSettings(config: DhcpConfig): EngineSettings {
  return {
    offerHoldMs: config.CROWBAR_DHCP_OFFER_HOLD_S * 1000,
    declineHoldMs: config.CROWBAR_DHCP_DECLINE_HOLD_S * 1000,
    discoveryBootenv: config.CROWBAR_DHCP_DISCOVERY_BOOTENV,
    mtu: config.CROWBAR_DHCP_MTU ?? null,
    ntp: config.CROWBAR_DHCP_NTP_SERVERS.map((a) => ipToInt(a)!),
  };
}

/** Re-reads every owner's records now, then every CROWBAR_DHCP_RESYNC_MS, each run after the last ends. */
function startResync(bus: Bus, projection: Projection, config: DhcpConfig, log: Logger) {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const resync = async () => {
    const { time, all } = await readOwners(bus, log);
    await projection.resync(all, time);
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      resync()
        .catch((err: unknown) => log.warn({ err }, 'dhcp re-sync failed'))
        .finally(() => schedule(config.CROWBAR_DHCP_RESYNC_MS));
    }, ms);
  };
  schedule(0);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** Expires leases every CROWBAR_DHCP_EXPIRY_MS; a tick while the last run is still going is skipped. */
function startExpiry(writer: ReturnType<typeof createLeaseWriter>, config: DhcpConfig, log: Logger) {
  let expiring = false;
  const timer = setInterval(() => {
    if (expiring) return;
    expiring = true;
    writer
      .expire()
      .catch((err: unknown) => log.warn({ err }, 'dhcp lease expiry failed'))
      .finally(() => {
        expiring = false;
      });
  }, config.CROWBAR_DHCP_EXPIRY_MS);
  return { stop: () => clearInterval(timer) };
}

function serverStats(
  server: ReturnType<typeof startServer>,
  table: LeaseTable,
  boot: ReturnType<typeof bootMapSource>,
  dns: ReturnType<typeof dnsSource>,
) {
  return {
    received: server.stats.received,
    replied: { ...server.stats.replied },
    dropped: { ...server.stats.dropped },
    leases: table.counts(),
    interfaces: server.interfaces(),
    bootMap: { source: boot.source(), version: boot.current().version },
    dns: { servers: dns.current().servers.map(intToIp), domain: dns.current().domain },
  };
}

/** The boot map: the configured default until the provisioner answers or announces a newer one. */
function bootMapSource(bus: Bus, config: DhcpConfig, log: Logger) {
  let map: BootMap = defaultBootMap(config);
  let source: 'config' | 'provisioner' = 'config';
  const offer = (m: BootMap, from: 'config' | 'provisioner') => {
    if (from === 'provisioner' && source === 'provisioner' && m.version < map.version) return;
    map = m;
    source = from;
    log.info({ version: m.version, source: from }, 'dhcp boot map in use');
  };
  const ask = () =>
    bus
      .request(provisionerMessages.bootMapGet, {}, { timeoutMs: 2000 })
      .then((m) => offer(m, 'provisioner'))
      .catch(() => undefined);
  void ask();
  const timer = setInterval(() => source === 'config' && void ask(), 30_000);
  return { current: () => map, source: () => source, offer, stop: () => clearInterval(timer) };
}

/** dns-db's servers and domain: asked every 500 ms until dns-db answers, then every 30 s (never made up here). */
function dnsSource(bus: Bus, log: Logger) {
  let current: { servers: number[]; domain: string | null } = { servers: [], domain: null };
  let warned = false;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const ask = async () => {
    try {
      const c = await bus.request(dnsMessages.clientConfig, {}, { timeoutMs: 2000 });
      current = { servers: c.servers.map(ipToInt).filter((v): v is number => v !== null), domain: c.domain };
    } catch {
      if (!warned) log.warn('dns-db does not answer yet: leases go out without DNS servers and domain');
      warned = true;
    }
    if (!stopped) timer = setTimeout(() => void ask(), current.domain ? 30_000 : 500);
  };
  void ask();
  return {
    current: () => current,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** `dhcp.lease.offered`, at most once a minute per MAC and 20 a second overall (a random-MAC storm stays small). */
function offeredEvents(bus: Bus, now: () => number) {
  const lastByMac = new Map<string, number>();
  let windowStart = 0;
  let inWindow = 0;
  return (e: Parameters<Parameters<typeof createEngine>[0]['offered']>[0]) => {
    const t = now();
    if ((lastByMac.get(e.mac) ?? -Infinity) > t - 60_000) return;
    if (t - windowStart >= 1000) {
      windowStart = t;
      inWindow = 0;
    }
    if (++inWindow > 20) return;
    if (lastByMac.size > 50_000) lastByMac.clear();
    lastByMac.set(e.mac, t);
    const { iface, ...rest } = e;
    void bus.publish(dhcpMessages.leaseOffered, { ...rest, interface: iface }).catch(() => undefined);
  };
}
