import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startNatsServer } from '../../infra/nats.js';
import { pickPort } from '../../infra/ports.js';
import { startEmbeddedPostgres } from '../../infra/postgres.js';
import { Bus } from '../../shared/bus/bus.js';
import { createLogger } from '../../shared/log.js';
import { createTestEnv, type TestEnv } from './env.js';

/**
 * PostgreSQL and NATS for a benchmark outside vitest: the machine's own when they answer
 * (`TEST_DATABASE_URL`, `NATS_URL`, else 127.0.0.1:5432 and :4222), else an embedded PostgreSQL and a
 * nats-server of its own in a temp dir, stopped by `stop()`.
 */
export async function benchServices(log: (l: string) => void): Promise<{
  pgAdminUrl: string;
  natsUrl: string;
  stop(): Promise<void>;
}> {
  const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-`);
  const stops: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  let pgAdminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const c0 = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 2000 });
  const pgUp = await c0.connect().then(
    () => true,
    () => false,
  );
  await c0.end().catch(() => undefined);
  if (!pgUp) {
    const h = await startEmbeddedPostgres({
      dir: `${dir}/pg`,
      port: await pickPort(5497),
      database: 'crowbar',
      persistent: false,
      log,
    });
    stops.unshift(() => h.stop());
    pgAdminUrl = h.adminUrl;
  }
  let natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  try {
    const nc = await connect({ servers: natsUrl, timeout: 2000, reconnect: false });
    await (await jetstreamManager(nc)).getAccountInfo();
    await nc.close();
  } catch {
    const h = await startNatsServer({ dir: `${dir}/nats`, port: await pickPort(4497), log });
    stops.unshift(() => h.stop());
    natsUrl = h.url;
  }
  return {
    pgAdminUrl,
    natsUrl,
    async stop() {
      for (const s of stops) await s().catch(() => undefined);
    },
  };
}

/**
 * What a bench must undo, undone newest first when it ends (`run`) or is stopped with Ctrl-C (then the
 * process exits 130), so an interrupted bench still drops its database and streams.
 */
export function benchCleanups() {
  const cleanups: (() => Promise<void>)[] = [];
  const run = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => void run().then(() => process.exit(130)));
  return { defer: (c: () => Promise<void>) => void cleanups.push(c), run };
}
export type BenchCleanups = ReturnType<typeof benchCleanups>;

/** A database and bus prefix of the bench's own (on `benchServices`), dropped at the end. */
export async function benchEnvironment(scope: BenchCleanups, log: (l: string) => void): Promise<TestEnv> {
  const services = await benchServices(log);
  scope.defer(() => services.stop());
  const env = await createTestEnv(services);
  scope.defer(() => env.cleanup());
  return env;
}

/** A bus client on the bench's environment, closed at the end. */
export async function benchBus(scope: BenchCleanups, env: TestEnv, source = 'bench'): Promise<Bus> {
  const bus = await Bus.connect({
    url: env.natsUrl,
    prefix: env.prefix,
    source,
    log: createLogger(source, { level: 'warn' }),
  });
  scope.defer(() => bus.close());
  return bus;
}
