/**
 * Finds or starts the real PostgreSQL and nats-server the tests talk to: the environment's
 * (TEST_DATABASE_URL / NATS_URL), else the default local ports if they answer, else private ones in a
 * temporary directory, stopped again at the end. Each test file then makes its own database and prefix.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ensureDiscoveryImage } from '../infra/images/discovery.js';
import { ensureOsImage } from '../infra/images/os.js';
import { startNatsServer } from '../infra/nats.js';
import { ensureDebianPrograms, testPrograms } from '../infra/packages.js';
import { pickPort } from '../infra/ports.js';
import { startEmbeddedPostgres } from '../infra/postgres.js';
import { benchmarkingRange, ensureBlackholeRoutes } from '../infra/routes.js';
import { ensureUiBuild } from '../infra/ui-build.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    natsUrl: string;
  }
}

async function pgWorks(url: string) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function jetStreamWorks(url: string) {
  try {
    const nc = await connect({ servers: url, timeout: 2000, reconnect: false });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject) {
  const log = (l: string) => process.stderr.write(`[test-setup] ${l}\n`);
  const stops: (() => Promise<void>)[] = [];
  const dir = mkdtempSync(`${tmpdir()}/crowbar-test-`);
  for (const note of ensureBlackholeRoutes([benchmarkingRange, 'fd00::/8'])) log(note);
  // Installed here, once, before any test file runs (files installing on their own would race for dpkg).
  ensureDebianPrograms(testPrograms, 'the tests run the real programs', log);
  // The web UI the gateway serves at / (test/ui-*.test.ts drive it in Chromium).
  log(`web UI ${await ensureUiBuild(fileURLToPath(new URL('..', import.meta.url)), log)}`);
  // Built (or found in the machine's cache) once, before the files that boot it and the launcher's run.
  log(`discovery image ${ensureDiscoveryImage({ log }).dir}`);
  // The OS image the install test writes to a VM's disk (a few minutes the first time on a machine).
  log(`OS image ${ensureOsImage({ log }).file}`);

  let pgAdminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (!(await pgWorks(pgAdminUrl))) {
    log('no PostgreSQL reachable; starting an embedded one');
    const h = await startEmbeddedPostgres({
      dir: `${dir}/pg`,
      port: await pickPort(5499),
      database: 'crowbar',
      persistent: false,
      log,
    });
    stops.push(() => h.stop());
    pgAdminUrl = h.adminUrl;
  }
  let natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  if (!(await jetStreamWorks(natsUrl))) {
    log('no NATS with JetStream reachable; starting a private nats-server');
    const h = await startNatsServer({ dir: `${dir}/nats`, port: await pickPort(4499), log });
    stops.push(() => h.stop());
    natsUrl = h.url;
  }
  project.provide('pgAdminUrl', pgAdminUrl);
  project.provide('natsUrl', natsUrl);
  return async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
}
