import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startNatsServer } from '../../infra/nats.js';
import { pickPort } from '../../infra/ports.js';
import { startEmbeddedPostgres } from '../../infra/postgres.js';

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
