import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { inject } from 'vitest';
import { Bus } from '../../shared/bus/bus.js';
import { createLogger } from '../../shared/log.js';

/**
 * Per-file isolation: a fresh database and a fresh bus prefix (so fresh streams and consumers).
 * Call `cleanup()` in afterAll; it drops both.
 */
export interface TestEnv {
  databaseUrl: string;
  natsUrl: string;
  prefix: string;
  /** Environment for hostService / child processes. */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/** A fresh database and bus prefix; inside vitest from its global setup, or from `urls` (benchmarks). */
export async function createTestEnv(urls?: { pgAdminUrl: string; natsUrl: string }): Promise<TestEnv> {
  const adminUrl = urls?.pgAdminUrl ?? inject('pgAdminUrl');
  const natsUrl = urls?.natsUrl ?? inject('natsUrl');
  const tag = randomBytes(5).toString('hex');
  const dbName = `crowbar_test_${tag}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  const databaseUrl = adminUrl.replace(/\/[^/]*$/, `/${dbName}`);
  const prefix = `t${tag}`;
  return {
    databaseUrl,
    natsUrl,
    prefix,
    env: {
      DATABASE_URL: databaseUrl,
      NATS_URL: natsUrl,
      CROWBAR_BUS_PREFIX: prefix,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    },
    async cleanup() {
      const nc = await connect({ servers: natsUrl });
      try {
        const jsm = await jetstreamManager(nc);
        for await (const name of jsm.streams.names()) {
          if (name.startsWith(`${prefix.toUpperCase()}_`)) await jsm.streams.delete(name);
        }
      } finally {
        await nc.close();
      }
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${dbName} with (force)`);
      await c.end();
    },
  };
}

/** A bus client of the test's own, on the file's NATS and prefix. Close it in afterAll. */
export const connectTestBus = (t: TestEnv) =>
  Bus.connect({
    url: t.natsUrl,
    prefix: t.prefix,
    source: 'test',
    log: createLogger('t', { level: 'silent' }),
  });
