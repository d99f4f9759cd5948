/**
 * `npm start`: brings up NATS and PostgreSQL (unless NATS_URL / DATABASE_URL point elsewhere), then every
 * service as its own child process (or all in this process with --single), restarts crashed ones with
 * backoff, prints status and the gateway URL, and on Ctrl-C / SIGTERM stops everything it started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  type WriteStream,
  writeFileSync,
} from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { hostAddressesIn } from '../services/inventory/admin-node.js';
import type { ServiceName } from '../shared/catalogue/index.js';
import { ConfigError } from '../shared/config.js';
import { type HostedService, hostService, loadServiceConfig } from '../shared/service/host.js';
import { generateKeyPair, isUsablePrivateKey } from '../shared/ssh/index.js';
import { isCertificateError } from './https-fetch.js';
import { ensureDiscoveryImage } from './images/discovery.js';
import { ensureOsImage } from './images/os.js';
import { type NatsServerHandle, startNatsServer, stopStaleNatsServer } from './nats.js';
import { natsAuthorization, natsCredentials, natsUrlFor } from './nats-auth.js';
import { ensureDebianProgram } from './packages.js';
import { pickPort } from './ports.js';
import { type PostgresHandle, startEmbeddedPostgres, stopStalePostmaster } from './postgres.js';
import { benchmarkingRange, ensureBlackholeRoutes } from './routes.js';
import { allServices } from './services.js';
import { gatewayFetch, gatewayTls } from './tls.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`[crowbar] ${line}\n`);

const { values: args } = parseArgs({
  options: {
    single: { type: 'boolean', default: false },
    wizard: { type: 'boolean', default: false },
    'state-dir': { type: 'string' },
    logs: { type: 'boolean', default: false },
  },
});

// Absolute, because services get paths inside it (CROWBAR_SSH_KEY) and run from the repository root.
const stateDir = resolve(args['state-dir'] ?? process.env.CROWBAR_STATE_DIR ?? `${root}.state`);
const env: Record<string, string | undefined> = { ...process.env };
const cleanups: (() => Promise<void>)[] = [];
let shuttingDown = false;
/** The NATS URL (with its credentials) a service connects with: its own user on our nats-server. */
let natsUrlOf: (name: ServiceName) => string | undefined = () => env.NATS_URL;

/** The gateway's certificate (PEM) when it serves HTTPS: the launcher's own requests trust it. */
let tls: ReturnType<typeof gatewayTls> = null;

async function main() {
  // CROWBAR_TLS=self-signed makes the certificate; a bad one is one sentence here, before anything starts.
  tls = gatewayTls(env, `${stateDir}/tls`, say);
  // Check every service's configuration before starting anything.
  for (const def of allServices)
    loadServiceConfig(def, {
      ...env,
      NATS_URL: env.NATS_URL ?? 'nats://127.0.0.1:1',
      DATABASE_URL: env.DATABASE_URL ?? 'postgres://x@127.0.0.1/x',
    });

  mkdirSync(`${stateDir}/logs`, { recursive: true });
  // As root, embedded PostgreSQL runs as the `postgres` user, which must be able to pass through the
  // state dir to reach its data dir (secrets inside keep their own 0600/0700 modes).
  if (process.getuid?.() === 0 && !env.DATABASE_URL) {
    const mode = statSync(stateDir).mode;
    if ((mode & 0o001) === 0) chmodSync(stateDir, (mode & 0o777) | 0o001);
  }
  say(`state directory ${stateDir}`);
  for (const note of ensureBlackholeRoutes([benchmarkingRange])) say(note);
  // aliveness-probe pings every node with one fping process per sweep.
  ensureDebianProgram({
    candidates: ['/usr/bin/fping', '/usr/sbin/fping'],
    pkg: 'fping',
    why: 'aliveness-probe pings nodes with it',
    log: say,
  });

  // Before anything starts: a cluster key that cannot be used stops the start in one sentence.
  if (!env.CROWBAR_SSH_KEY) env.CROWBAR_SSH_KEY = clusterSshKey();

  if (!env.NATS_URL) {
    // A nats-server left over from a launcher killed outright would still hold the preferred port.
    await stopStaleNatsServer(`${stateDir}/nats`, say);
    // One NATS user per service, with the permissions its catalogue grants say (infra/nats-auth.ts).
    mkdirSync(`${stateDir}/nats`, { recursive: true, mode: 0o700 });
    const credsFile = `${stateDir}/nats/credentials.json`;
    const creds = natsCredentials(credsFile);
    const nats: NatsServerHandle = await startNatsServer({
      dir: `${stateDir}/nats`,
      port: await pickPort(4322),
      log: say,
      authorization: natsAuthorization(creds, env.CROWBAR_BUS_PREFIX ?? 'crowbar'),
    });
    cleanups.push(() => nats.stop());
    env.NATS_URL = natsUrlFor(nats.url, 'admin', creds);
    natsUrlOf = (name) => natsUrlFor(nats.url, name, creds);
    say(
      `nats-server (JetStream) at ${nats.url}, pid ${nats.pid}; a user per service, users and passwords in ${credsFile}`,
    );
  } else say(`using NATS at ${env.NATS_URL.replace(/\/\/[^@/]*@/, '//***@')}`);

  if (!env.DATABASE_URL) {
    say('starting embedded PostgreSQL …');
    await stopStalePostmaster(`${stateDir}/postgres`, say);
    // The superuser's password is generated once per installation (mode 0600); a cluster made before
    // that had the constant `crowbar`, which is changed to it at this start.
    const hadPassword = existsSync(`${stateDir}/postgres-password`);
    const pgh: PostgresHandle = await startEmbeddedPostgres({
      dir: `${stateDir}/postgres`,
      port: await pickPort(5433),
      database: 'crowbar',
      persistent: true,
      password: stateSecret('postgres-password'),
      ...(hadPassword ? {} : { legacyPassword: 'crowbar' }),
      log: say,
    });
    cleanups.push(() => pgh.stop());
    env.DATABASE_URL = pgh.url;
    say(`embedded PostgreSQL at ${pgh.url.replace(/:[^:@/]+@/, ':***@')}, pid ${pgh.pid}`);
  } else say('using PostgreSQL from DATABASE_URL');

  if (!env.CROWBAR_ADMIN_TOKEN) env.CROWBAR_ADMIN_TOKEN = operatorToken();
  // Signs the discovery tokens the provisioner hands booting machines; the gateway checks them.
  if (!env.CROWBAR_DISCOVERY_SECRET) env.CROWBAR_DISCOVERY_SECRET = stateSecret('discovery-secret');
  if (!env.CROWBAR_BOOT_ROOT) env.CROWBAR_BOOT_ROOT = `${stateDir}/boot`;
  // The discovery image unknown machines boot: built once per machine (cached), reused after.
  if (!env.CROWBAR_DISCOVERY_IMAGE) {
    try {
      env.CROWBAR_DISCOVERY_IMAGE = ensureDiscoveryImage({ log: say }).dir;
    } catch (err) {
      // Not fatal: the control plane runs, only discovery boots wait for the image (npm run images).
      const why = err instanceof Error ? err.message : String(err);
      say(`no discovery image, so machines cannot PXE-boot into discovery yet: ${why}`);
    }
  }
  // The OS image provisioner-os-install writes to disks: built once per machine too (a few minutes).
  if (!env.CROWBAR_OS_IMAGE_DIR) {
    try {
      env.CROWBAR_OS_IMAGE_DIR = ensureOsImage({ log: say }).dir;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      say(`no OS image, so installs cannot run yet: ${why}`);
    }
  }
  // --wizard: the operator sets up the admin network and admin node in the UI wizard instead.
  if (args.wizard) {
    env.CROWBAR_BOOTSTRAP_ADMIN_NETWORK = 'false';
    env.CROWBAR_ADMIN_NODE = 'false';
  }
  if (!args.wizard) adminDnsServers();
  const port = Number(env.CROWBAR_HTTP_PORT ?? 3000);
  if (args.single) await runSingle();
  else for (const def of allServices) superviseChild(def.name);
  await reportHealth(port);
}

/**
 * The DNS server nodes are told (dns-db's `CROWBAR_DNS_SERVERS`, unless set) is the admin node's
 * address on the admin network: this machine's own address there. When no interface carries one, it
 * says so once and dns-db keeps its default (this machine's addresses).
 */
function adminDnsServers() {
  if (env.CROWBAR_DNS_SERVERS) return;
  const cidr = env.CROWBAR_ADMIN_CIDR ?? '198.18.0.0/24';
  const own = hostAddressesIn(cidr);
  if (own.length > 0) {
    env.CROWBAR_DNS_SERVERS = own.join(',');
    say(`nodes are told DNS server ${own.join(', ')}: this machine on the admin network ${cidr}`);
  } else
    say(
      `no interface of this machine is on the admin network ${cidr}: nodes cannot reach the admin node there (set CROWBAR_DNS_SERVERS, or give an interface an address in ${cidr})`,
    );
}

/** The admin token, generated once per installation and kept in the state dir (mode 0600). */
function operatorToken(): string {
  return stateSecret('operator-token');
}

/** A secret generated once per installation into `<state>/<name>` (mode 0600). */
function stateSecret(name: string): string {
  const file = `${stateDir}/${name}`;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/**
 * The cluster's SSH key pair (ed25519), made once per installation in the state dir. Services that log
 * in to nodes (jig-runner, aliveness-probe) get the private key's path as CROWBAR_SSH_KEY; the key
 * itself is never printed.
 */
function clusterSshKey(): string {
  const dir = `${stateDir}/ssh`;
  const file = `${dir}/id_ed25519`;
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    if (!isUsablePrivateKey(readFileSync(file, 'utf8')))
      throw new ConfigError([
        `the cluster SSH key ${file} is not an unencrypted OpenSSH private key: replace it, or remove it (and ${file}.pub) to have a new pair made`,
      ]);
    return file;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // generateKeyPair, not ssh2's own: ssh2 writes 1 ed25519 key in 256 that nothing can read back.
  const pair = generateKeyPair('crowbar-cluster');
  writeFileSync(file, pair.privateKey, { mode: 0o600 });
  writeFileSync(`${file}.pub`, `${pair.publicKey}\n`, { mode: 0o644 });
  say(`created the cluster SSH key pair ${file} (public key in ${file}.pub)`);
  return file;
}

/** All services in this process, each with its own NATS connection; they still talk only over NATS. */
async function runSingle() {
  const hosted: HostedService[] = [];
  cleanups.push(async () => {
    for (const h of hosted.reverse()) await h.stop('launcher stopping');
  });
  for (const def of allServices) {
    const log = createWriteStream(`${stateDir}/logs/${def.name}.log`, { flags: 'a' });
    hosted.push(
      await hostService(def, { env: { ...env, NATS_URL: natsUrlOf(def.name) }, log: { destination: log } }),
    );
  }
  say('all services running in one process (--single)');
}

interface Child {
  name: string;
  proc: ChildProcess | null;
  restarts: number;
  startedAt: number;
  log: WriteStream;
}
const children = new Map<string, Child>();

function superviseChild(name: ServiceName) {
  const c: Child = children.get(name) ?? {
    name,
    proc: null,
    restarts: 0,
    startedAt: 0,
    log: createWriteStream(`${stateDir}/logs/${name}.log`, { flags: 'a' }),
  };
  children.set(name, c);
  const proc = spawn(process.execPath, ['--import', 'tsx', `${root}services/${name}/index.ts`], {
    cwd: root,
    env: { ...env, NATS_URL: natsUrlOf(name), CROWBAR_PARENT_PIPE: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  c.proc = proc;
  c.startedAt = Date.now();
  proc.stdout?.pipe(c.log, { end: false });
  proc.stderr?.on('data', (chunk: Buffer) => {
    c.log.write(chunk);
    if (args.logs || c.restarts === 0) process.stderr.write(`[${name}] ${chunk.toString()}`);
  });
  if (args.logs) proc.stdout?.on('data', (chunk: Buffer) => process.stdout.write(chunk));
  proc.once('exit', (code, signal) => {
    c.proc = null;
    if (shuttingDown) return;
    // Backoff grows with quick successive crashes and resets after a minute of good running.
    if (Date.now() - c.startedAt > 60_000) c.restarts = 0;
    const delay = Math.min(30_000, 500 * 2 ** c.restarts);
    c.restarts++;
    say(`${name} exited (${signal ?? `code ${code}`}); restarting in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(() => !shuttingDown && superviseChild(name), delay);
  });
}

async function stopChildren() {
  await Promise.all(
    [...children.values()].map(
      (c) =>
        new Promise<void>((resolve) => {
          const p = c.proc;
          if (!p || p.exitCode !== null) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGTERM');
          setTimeout(() => p.kill('SIGKILL'), 8000).unref();
        }),
    ),
  );
}

/** What the launcher reads of `GET /api/v2/health`. */
const healthSummary = z.object({
  up: z.number(),
  total: z.number(),
  services: z.array(z.object({ service: z.string(), status: z.string() })),
});

async function fetchHealth(port: number): Promise<z.infer<typeof healthSummary> | null> {
  try {
    // Health is answered over plain HTTP on the TLS port too.
    const r = await fetch(`http://127.0.0.1:${port}/api/v2/health`, { signal: AbortSignal.timeout(3000) });
    const parsed = healthSummary.safeParse(await r.json());
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Prints progress until every service is healthy, then one line whenever the count changes. */
let ulaGuarded = false;

/** Blackholes the installation's ULA /48 (as 198.18.0.0/15 at start), once network-ipam has made it. */
async function guardUla(port: number): Promise<boolean> {
  try {
    const r = await gatewayFetch(port, '/api/v2/network_ula', tls?.ca, {
      authorization: `Bearer ${env.CROWBAR_ADMIN_TOKEN}`,
    });
    if (!r.ok) return false;
    const { prefix } = (await r.json()) as { prefix?: unknown };
    if (typeof prefix !== 'string' || !/^fd[0-9a-f:]+\/48$/.test(prefix)) return false;
    for (const note of ensureBlackholeRoutes([prefix])) say(note);
    return true;
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (isCertificateError(code)) say(`cannot ask the gateway at 127.0.0.1 for the ULA prefix: ${code}`);
    return isCertificateError(code);
  }
}

async function reportHealth(port: number) {
  const started = Date.now();
  let last = '';
  for (;;) {
    if (shuttingDown) return;
    const h = await fetchHealth(port);
    const line = h ? `${h.up}/${h.total} services healthy` : 'gateway not answering yet';
    if (line !== last) {
      const down = h?.services.filter((s) => s.status !== 'up').map((s) => s.service) ?? [];
      say(
        `${line}${down.length ? ` (waiting for ${down.join(', ')})` : ''} after ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      if (h && h.up === h.total) {
        const scheme = tls ? 'https' : 'http';
        say(
          `gateway: ${scheme}://127.0.0.1:${port}/api/v2  (health: /api/v2/health, logs: ${stateDir}/logs)`,
        );
        if (tls) say(tls.note);
        say(`operator token: ${env.CROWBAR_ADMIN_TOKEN}  (also in ${stateDir}/operator-token)`);
        say('press Ctrl-C to stop');
        if (!ulaGuarded) ulaGuarded = await guardUla(port);
      }
      last = line;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function shutdown(reason: string) {
  if (shuttingDown) return;
  shuttingDown = true;
  say(`stopping (${reason}) …`);
  await stopChildren();
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => say(`cleanup failed: ${String(e)}`));
  say('stopped');
  process.exit(0);
}

process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGHUP', () => void shutdown('SIGHUP'));

main().catch(async (err: unknown) => {
  if (err instanceof ConfigError) say(err.message);
  else say(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  shuttingDown = true;
  await stopChildren();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  process.exit(1);
});
