import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import {
  findKnee,
  giaddr,
  type Knee,
  keaPath,
  relaySubnet,
  type SearchOptions,
  type Side,
  spawnIn,
} from './_dhcp-topology.js';

/** The dhcp bench's baseline: Debian's kea-dhcp4 with a memfile or a PostgreSQL lease store. */

export const keaDhcp4 = '/usr/sbin/kea-dhcp4';

const keaSubnet = {
  id: 1,
  subnet: relaySubnet.cidr,
  pools: [{ pool: `${relaySubnet.first} - ${relaySubnet.last}` }],
  'option-data': [{ name: 'routers', data: giaddr }],
};

export function keaSide(
  dir: string,
  label: string,
  leaseDatabase: object,
  emptyStore: () => Promise<void>,
): Side {
  const conf = `${dir}/${label}.json`;
  const logFile = `${dir}/${label}.log`;
  writeFileSync(
    conf,
    JSON.stringify({
      Dhcp4: {
        'interfaces-config': { interfaces: [keaPath.serverIf], 'dhcp-socket-type': 'udp' },
        'lease-database': leaseDatabase,
        'multi-threading': { 'enable-multi-threading': true, 'thread-pool-size': 2, 'packet-queue-size': 64 },
        // Nothing expires during the run.
        'valid-lifetime': 86_400,
        'renew-timer': 43_200,
        'rebind-timer': 75_600,
        subnet4: [keaSubnet],
        loggers: [{ name: 'kea-dhcp4', output_options: [{ output: logFile }], severity: 'WARN' }],
      },
    }),
  );
  let kea: ReturnType<typeof spawnIn> | null = null;
  return {
    label,
    path: keaPath,
    readyMs: 15_000,
    async start() {
      await emptyStore();
      kea = spawnIn(keaPath.serverNs!, [keaDhcp4, '-c', conf], {
        KEA_PIDFILE_DIR: dir,
        KEA_LOCKFILE_DIR: dir,
      });
    },
    async stop() {
      await kea?.stop();
    },
    alive: () => kea?.alive() ?? false,
    diagnose() {
      const logged = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3) : [];
      return [
        kea?.alive() ? 'kea-dhcp4 runs' : 'kea-dhcp4 exited',
        kea?.output().trim().split('\n').slice(-3).join(' | ') ?? '',
        ...logged,
      ].join(' | ');
    },
    nonUnique: async () => null,
  };
}

/** A directory holding the Unix socket of `c`'s server: Kea's namespace has no way to its 127.0.0.1. */
async function socketDir(c: pg.Client): Promise<{ dir: string; port: number } | null> {
  const r = await c.query(
    "select current_setting('unix_socket_directories') as dirs, current_setting('port')::int as port",
  );
  const { dirs, port } = r.rows[0] as { dirs: string; port: number };
  const dir = dirs
    .split(',')
    .map((d) => d.trim())
    .find((d) => d && existsSync(`${d}/.s.PGSQL.${port}`));
  return dir ? { dir, port } : null;
}

/** Kea on a fresh database of its own, its schema made by `kea-admin db-init`; null if it cannot be set up. */
export async function keaOnPostgres(
  admin: pg.Client,
  dir: string,
  tag: string,
  run: { pgAdmin: string; search: SearchOptions; say: (l: string) => void; stops: (() => Promise<void>)[] },
): Promise<Knee | null> {
  const { pgAdmin, search, say, stops } = run;
  const socket = await socketDir(admin);
  if (!socket) {
    say('kea_pg: skipped (no Unix socket of the PostgreSQL server to reach it from a namespace)');
    return null;
  }
  const keaDb = `crowbar_dhcp_bench_kea_${tag}`;
  await admin.query(`create database ${keaDb}`);
  stops.unshift(async () => {
    await admin.query(`drop database if exists ${keaDb} with (force)`);
  });
  const u = new URL(pgAdmin);
  const user = decodeURIComponent(u.username || 'postgres');
  const password = decodeURIComponent(u.password);
  try {
    execFileSync(
      'kea-admin',
      ['db-init', 'pgsql', '-u', user, '-p', password, '-n', keaDb, '-h', u.hostname, '-P', u.port || '5432'],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 60_000 },
    );
  } catch (cause) {
    const out = String((cause as { stderr?: string }).stderr ?? '').trim();
    throw new Error(`kea-admin db-init pgsql failed: ${out.split('\n').slice(-2).join(' ')}`, { cause });
  }
  const c = new pg.Client({ connectionString: pgAdmin.replace(/\/[^/]*$/, `/${keaDb}`) });
  c.on('error', (e) => say(`kea_pg connection: ${e.message}`));
  await c.connect();
  stops.unshift(() => c.end());
  const leaseDatabase = {
    type: 'postgresql',
    name: keaDb,
    host: socket.dir,
    port: socket.port,
    user,
    ...(password ? { password } : {}),
  };
  const side = keaSide(dir, 'kea_pg', leaseDatabase, async () => {
    await c.query('delete from lease4');
  });
  return findKnee(side, search);
}
