import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { streamsOf } from '../bus/access.js';
import { Bus } from '../bus/bus.js';
import { health, type ServiceName, streams, system } from '../catalogue/index.js';
import { asJsonObject } from '../catalogue/json.js';
import { type Clock, systemClock } from '../clock.js';
import { type BaseConfig, baseConfigSchema, parseConfig } from '../config.js';
import { checkReachable, type Database, migrateSchema, openDatabase } from '../db/database.js';
import { startUpkeep } from '../db/upkeep.js';
import { createLogger, type Logger, type LogOptions } from '../log.js';
import { version } from '../version.js';

export interface ServiceDeps<C> {
  name: ServiceName;
  instance: string;
  version: string;
  config: BaseConfig & C;
  log: Logger;
  bus: Bus;
  /** Null for services that own no schema (the gateway). */
  database: Database | null;
  clock: Clock;
  ids: () => string;
}

export interface RunningService {
  stop(): Promise<void>;
  /** Extra facts for the health report (queue depths, counters). */
  detail?(): Record<string, unknown>;
}

export interface ServiceDef<S extends z.ZodObject = z.ZodObject> {
  name: ServiceName;
  /** Service-specific environment variables, validated together with the base ones. */
  config: S;
  /** The PostgreSQL schema this service owns and where its drizzle-kit migrations live. */
  schema?: { name: string; migrationsFolder: string };
  start(deps: ServiceDeps<z.infer<S>>): Promise<RunningService>;
}

export interface HostOptions {
  env: Record<string, string | undefined>;
  log?: LogOptions;
  clock?: Clock;
}

export interface HostedService {
  name: ServiceName;
  instance: string;
  log: Logger;
  detail(): Record<string, unknown>;
  stop(reason?: string): Promise<void>;
}

/** Validates config for a service without starting anything; throws ConfigError listing every problem. */
export function loadServiceConfig<S extends z.ZodObject>(
  def: ServiceDef<S>,
  env: Record<string, string | undefined>,
) {
  return parseConfig(baseConfigSchema.extend(def.config.shape), env) as BaseConfig & z.infer<S>;
}

/**
 * Starts one service: config, logger, NATS (streams applied), its schema migrated, its own start, and
 * the health RPC. The same function runs a service as its own process, in the all-in-one mode and in tests.
 */
export async function hostService<S extends z.ZodObject>(
  def: ServiceDef<S>,
  opts: HostOptions,
): Promise<HostedService> {
  const config = loadServiceConfig(def, opts.env);
  const instance =
    config.CROWBAR_INSTANCE ?? `${def.name}-${hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`;
  const log = createLogger(def.name, { level: config.LOG_LEVEL, ...opts.log }).child({ instance });
  const clock = opts.clock ?? systemClock;
  const startedAt = clock.now();

  const bus = await Bus.connect({
    url: config.NATS_URL,
    prefix: config.CROWBAR_BUS_PREFIX,
    source: instance,
    log,
    // Only the streams it sends to or reads: the ones its NATS user may create and update.
    streams: streams.filter((s) => streamsOf(def.name).includes(s.name)),
    service: def.name,
    tlsCa: config.NATS_TLS_CA,
    replicas: config.CROWBAR_STREAM_REPLICAS,
  });
  let database: Database | null = null;
  let running: RunningService | null = null;
  try {
    if (def.schema) {
      database = openDatabase(config.DATABASE_URL, {
        applicationName: instance,
        max: config.CROWBAR_DB_POOL_MAX,
      });
      await checkReachable(database, config.DATABASE_URL);
      await migrateSchema(config.DATABASE_URL, def.schema.name, def.schema.migrationsFolder);
    }
    running = await def.start({
      name: def.name,
      instance,
      version,
      config,
      log,
      bus,
      database,
      clock,
      ids: randomUUID,
    });
  } catch (err) {
    log.error({ err }, 'service failed to start');
    // Closing must not hang on clients a half-started service still holds.
    await Promise.race([
      Promise.all([bus.close(), database?.close()]),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
    throw err;
  }

  const r = running;
  const upkeep =
    def.schema && database ? startUpkeep({ pool: database.pool, schema: def.schema.name, log }) : null;
  const healthSub = bus.serve(health[def.name], async () => ({
    service: def.name,
    instance,
    version,
    status: 'up' as const,
    startedAt: startedAt.toISOString(),
    uptimeSeconds: (clock.now().getTime() - startedAt.getTime()) / 1000,
    // Sent as JSON: what a service's stats hold (a Date, an unset field) as JSON.stringify writes it.
    detail: asJsonObject({ ...r.detail?.(), nats: bus.natsLink() }),
  }));
  await bus.publish(system.serviceStarted, { service: def.name, instance, version });
  log.info({ version }, 'service started');

  let stopping: Promise<void> | null = null;
  return {
    name: def.name,
    instance,
    log,
    detail: () => ({ ...r.detail?.(), nats: bus.natsLink() }),
    stop(reason = 'stop requested') {
      stopping ??= (async () => {
        healthSub.unsubscribe();
        await r.stop().catch((err: unknown) => log.error({ err }, 'service stop failed'));
        await upkeep?.stop();
        await bus
          .publish(system.serviceStopped, { service: def.name, instance, reason })
          .catch(() => undefined);
        await bus.close();
        await database?.close();
        log.info({ reason }, 'service stopped');
      })();
      return stopping;
    },
  };
}

export const noConfig = z.object({});
