import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { ensureDebianPrograms } from '../infra/packages.js';
import { isListening } from '../infra/ports.js';
import { Bus } from '../shared/bus/index.js';
import { ipamRpcs, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { type HostedService, hostService, type ServiceDef } from '../shared/service/host.js';
import { keaDhcp4, keaOnPostgres, keaSide } from './_dhcp-kea.js';
import {
  better,
  createTopology,
  findKnee,
  giaddr,
  type Knee,
  oursPath,
  poolSize,
  relaySubnet,
  removeOurs,
  type SearchOptions,
  type Side,
} from './_dhcp-topology.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    start: { type: 'string', default: '500' },
    max: { type: 'string', default: '64000' },
    /** Per knee search. */
    'time-limit': { type: 'string', default: '150' },
    'no-pg': { type: 'boolean', default: false },
    /** One side alone, for trying things out (the ratio then means nothing). */
    only: { type: 'string' },
  },
});
const say = (l: string) => process.stdout.write(`${l}\n`);
const ROUNDS = Math.min(4, Math.max(1, Number(opts.rounds) || 2));
const start = Math.min(10_000, Math.max(50, Number(opts.start) || 500));
const search: SearchOptions = {
  start,
  max: Math.min(200_000, Math.max(start, Number(opts.max) || 64_000)),
  seconds: Math.min(5, Math.max(0.5, Number(opts.seconds) || 2)),
  limitMs: Math.min(900, Math.max(10, Number(opts['time-limit']) || 150)) * 1000,
  maxDropPct: 2.5,
  // Leaves room in the pool for perfdhcp's few extra DISCOVERs and the readiness probes.
  perStep: Math.min(15_000, poolSize - 100),
  say,
};
const runs = (side: 'kea' | 'ours' | 'kea_pg') => !opts.only || opts.only === side;
const log = createLogger('bench-dhcp', { level: process.env.LOG_LEVEL ?? 'warn' });
const pgAdmin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

ensureDebianPrograms(
  [
    { candidates: ['/usr/sbin/perfdhcp'], pkg: 'kea-admin' },
    { candidates: ['/usr/sbin/kea-admin'], pkg: 'kea-admin' },
    // Debian builds Kea's PostgreSQL lease backend into kea-common: no package of its own.
    { candidates: [keaDhcp4], pkg: 'kea-dhcp4-server' },
    // kea-admin db-init runs psql.
    { candidates: ['/usr/bin/psql'], pkg: 'postgresql-client' },
    { candidates: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'], pkg: 'iproute2' },
  ],
  'perfdhcp and kea-dhcp4 for npm run bench -- dhcp',
  say,
);

// ---- ours ----

/** Loaded when ours runs, so Kea's figures still come out while a service does not load. */
async function service(name: string): Promise<ServiceDef> {
  const { allServices } = await import('../infra/services.js');
  return allServices.find((d) => d.name === name)!;
}

/**
 * network-ipam and dhcp-db in this process on a database and bus prefix of their own (dropped by the
 * run's cleanup), the relay network created through network-ipam's RPC.
 */
async function oursSide(admin: pg.Client, tag: string): Promise<Side> {
  const dbName = `crowbar_dhcp_bench_${tag}`;
  const prefix = `bench${tag}`;
  await admin.query(`create database ${dbName}`);
  stops.unshift(async () => {
    await admin.query(`drop database if exists ${dbName} with (force)`);
  });
  stops.unshift(async () => {
    const nc = await connect({ servers: natsUrl });
    try {
      const jsm = await jetstreamManager(nc);
      for await (const name of jsm.streams.names())
        if (name.startsWith(`${prefix.toUpperCase()}_`)) await jsm.streams.delete(name);
    } finally {
      await nc.close();
    }
  });
  const databaseUrl = pgAdmin.replace(/\/[^/]*$/, `/${dbName}`);
  const env = {
    DATABASE_URL: databaseUrl,
    NATS_URL: natsUrl,
    CROWBAR_BUS_PREFIX: prefix,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    CROWBAR_ADMIN_CIDR: '198.18.102.0/24',
    CROWBAR_DHCP_INTERFACES: oursPath.serverIf,
  };
  const db = new pg.Client({ connectionString: databaseUrl });
  db.on('error', (e) => say(`ours database connection: ${e.message}`));
  await db.connect();
  // Closed once its steps are done (or by the run's cleanup), so it does not run beside the next server.
  const closers: (() => Promise<void>)[] = [() => db.end()];
  const close = async () => {
    for (const c of closers.splice(0)) await c();
  };
  stops.unshift(close);
  const ipam = await hostService(await service('network-ipam'), { env });
  closers.unshift(() => ipam.stop('bench done'));
  const bus = await Bus.connect({
    url: natsUrl,
    prefix,
    source: 'bench-dhcp',
    log,
    streams,
  });
  closers.unshift(() => bus.close());
  // The relayed subnet: one anonymous `dhcp` range over the same pool Kea hands out.
  await bus.request(
    ipamRpcs.networkCreate,
    {
      name: 'relay',
      category: 'admin',
      conduit: '1g0',
      ranges: [
        {
          name: 'dhcp',
          first: `${relaySubnet.first}/${relaySubnet.prefix}`,
          last: `${relaySubnet.last}/${relaySubnet.prefix}`,
          anonLeaseTime: 86_400,
        },
      ],
      router: { address: `${giaddr}/${relaySubnet.prefix}` },
    },
    { timeoutMs: 30_000 },
  );
  let dhcp: HostedService | null = null;
  let starts = 0;
  let warned = false;
  // Made by dhcp-db's migrations at its first start.
  const leaseTable = async () => {
    const r = await db.query(
      `select count(*)::int as n from information_schema.columns
        where table_schema = 'dhcp_db' and table_name = 'leases' and column_name in ('address', 'mac')`,
    );
    return r.rows[0].n === 2;
  };
  const side: Side = {
    label: 'ours',
    close,
    path: oursPath,
    // The first start also waits for dhcp-db to learn the relay network.
    get readyMs() {
      return starts <= 1 ? 30_000 : 15_000;
    },
    async start() {
      if (await leaseTable()) await db.query('truncate dhcp_db.leases, dhcp_db.outbox');
      starts++;
      dhcp = await hostService(await service('dhcp-db'), { env });
    },
    async stop() {
      await dhcp?.stop('step done');
      dhcp = null;
    },
    alive: () => dhcp !== null,
    diagnose: () => (dhcp ? 'dhcp-db started' : 'dhcp-db not running'),
    async nonUnique() {
      if (!(await leaseTable())) {
        if (!warned) say('ours: no dhcp_db.leases(address, mac): not emptied between steps nor checked');
        warned = true;
        return null;
      }
      const r = await db.query(
        `select count(*)::int as n from
          (select address from dhcp_db.leases group by address having count(distinct mac) > 1) d`,
      );
      return r.rows[0].n as number;
    },
  };
  return side;
}

// ---- the run ----

const stops: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;
const cleanup = () => {
  cleaning ??= (async () => {
    for (const s of stops.splice(0)) await s().catch((e: unknown) => say(`cleanup: ${String(e)}`));
    removeOurs();
  })();
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    say(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
// Last resort (an uncaught error): what runs in our namespaces is ended by PID.
process.on('exit', () => removeOurs());

async function main() {
  if (!(await isListening(new URL(natsUrl).hostname, Number(new URL(natsUrl).port) || 4222)))
    throw new Error(`no NATS server at ${natsUrl} (set NATS_URL)`);
  const tag = randomBytes(4).toString('hex');
  const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-dhcp-`);
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  createTopology();
  const admin = new pg.Client({ connectionString: pgAdmin });
  admin.on('error', (e) => say(`admin connection: ${e.message}`));
  await admin.connect();
  stops.push(() => admin.end());

  // Kea, memfile: a fresh CSV per step.
  const leaseFile = `${dir}/leases4.csv`;
  const keaMem = keaSide(
    dir,
    'kea',
    { type: 'memfile', persist: true, name: leaseFile, 'lfc-interval': 0 },
    async () => {
      for (const suffix of ['', '.2', '.1', '.completed']) rmSync(`${leaseFile}${suffix}`, { force: true });
    },
  );
  say(
    `pool ${relaySubnet.first}–${relaySubnet.last} (${poolSize}), giaddr ${giaddr}; ≤ ${search.perStep} exchanges per step, ` +
      `${search.seconds} s at lower rates; pass: ≤ ${search.maxDropPct} % DORA drops`,
  );

  // Ours. A failure to start still lets Kea's figures out; the run fails below.
  let oursDef: Side | null = null;
  if (runs('ours')) {
    if (!existsSync(new URL('../services/dhcp-db/server/server.ts', import.meta.url)))
      say('ours: services/dhcp-db/server/server.ts is not there yet; trying anyway');
    try {
      oursDef = await oursSide(admin, tag);
    } catch (err) {
      say(`ours: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // Rounds alternate the order so background load on the shared machine hits both alike; best knee wins.
  let kea: Knee | null = null;
  let ours: Knee = { best: null, answered: false, nonUnique: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['kea', 'ours'] : ['ours', 'kea'];
    for (const name of order) {
      if (name === 'kea' && runs('kea')) kea = better(kea, await findKnee(keaMem, search));
      if (name === 'ours' && oursDef) {
        ours = better(
          ours,
          await findKnee(oursDef, search).catch((err: unknown) => {
            say(`ours: ${err instanceof Error ? err.message : String(err)}`);
            return { best: null, answered: false, nonUnique: 0 };
          }),
        );
        if (!ours.answered) {
          await oursDef.close?.();
          oursDef = null;
        }
      }
    }
  }
  await oursDef?.close?.();

  // Kea, PostgreSQL: once, informational, skipped when it cannot be set up here.
  let keaPg: Knee | null = null;
  if (!opts['no-pg'] && runs('kea_pg')) {
    try {
      keaPg = await keaOnPostgres(admin, dir, tag, { pgAdmin, search, say, stops });
    } catch (err) {
      say(`kea_pg: skipped (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  const figure = (k: Knee | null) => Math.round(k?.best?.leasesPerSec ?? 0);
  const at = (k: Knee | null) => (k?.best ? ` at ${k.best.rate}/s offered` : '');
  say(`kea (memfile, 2 threads): ${figure(kea)} leases/s${at(kea)}`);
  say(`ours (dhcp-db): ${figure(ours)} leases/s${at(ours)}${ours.answered ? '' : ' (no answers)'}`);
  if (keaPg) say(`kea_pg (PostgreSQL, 2 threads): ${figure(keaPg)} leases/s${at(keaPg)}`);
  const ratio = figure(kea) > 0 ? Math.round((figure(ours) / figure(kea)) * 1000) / 1000 : 0;
  say(`ratio ${ratio} (goal ≥ 0.5), non-unique addresses of ours: ${ours.nonUnique}`);
  if ((runs('ours') && !ours.answered) || ours.nonUnique > 0 || (runs('kea') && !kea?.best))
    process.exitCode = 1;
  say(
    JSON.stringify({
      bench: 'dhcp',
      ours: figure(ours),
      baseline: figure(kea),
      ratio,
      non_unique: ours.nonUnique,
      ...(keaPg ? { kea_pg: figure(keaPg) } : {}),
    }),
  );
}

try {
  await main();
} finally {
  await cleanup();
}
