import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureNatsServer } from '../infra/nats.js';
import { ensureDebianProgram } from '../infra/packages.js';
import { isListening, waitFor } from '../infra/ports.js';
import { Bus } from '../shared/bus/bus.js';
import { health } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

// infra/deploy/nats-cluster.conf as an operator uses it: copied beside the users list `npm run
// nats-users` writes, checked with `nats-server -t`, then three nodes started from it on loopback
// addresses of their own, with TLS for clients and mutual TLS between the nodes (a CA and certificates
// this test makes), and a service connecting over TLS as its own user.
const shipped = fileURLToPath(new URL('../infra/deploy/nats-cluster.conf', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));
let conf: string;
let creds: Record<string, string>;
const hosts = ['127.0.18.1', '127.0.18.2', '127.0.18.3'];
let dir: string;
let bin: string;
const servers: ChildProcess[] = [];
let t: TestEnv;
let stack: Stack | undefined;

/** A CA and one certificate per node (its address, serverAuth + clientAuth for the routes). */
function makeCertificates(openssl: string) {
  const ssl = (args: string[]) => execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    `${dir}/ca.key`,
    '-out',
    `${dir}/ca.crt`,
    '-days',
    '2',
    '-subj',
    '/CN=crowbar-test-ca',
  ]);
  hosts.forEach((host, i) => {
    const n = `${dir}/nats-${i + 1}`;
    ssl(['req', '-new', ...ec, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=nats-${i + 1}`]);
    writeFileSync(
      `${n}.ext`,
      // The address for the routes (nats-server checks it); `localhost` because nats.js checks a server
      // given by IP address against that name (README: use a DNS name in NATS_URL).
      `subjectAltName=IP:${host},DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n`,
    );
    ssl(
      [
        'x509',
        '-req',
        '-in',
        `${n}.csr`,
        '-CA',
        `${dir}/ca.crt`,
        '-CAkey',
        `${dir}/ca.key`,
        '-CAcreateserial',
      ].concat(['-days', '2', '-out', `${n}.crt`, '-extfile', `${n}.ext`]),
    );
  });
}

/** The environment the file's header asks for, for node i (0-based). */
function nodeEnv(i: number): Record<string, string> {
  const n = `${dir}/nats-${i + 1}`;
  return {
    NATS_NAME: `nats-${i + 1}`,
    NATS_HOST: hosts[i]!,
    NATS_STORE: `${dir}/store-${i + 1}`,
    NATS_HTTP: `${hosts[i]}:8222`,
    NATS_ROUTES: `[${hosts.map((h) => `nats-route://${h}:6222`).join(', ')}]`,
    NATS_TLS_CERT: `${n}.crt`,
    NATS_TLS_KEY: `${n}.key`,
    NATS_TLS_CA: `${dir}/ca.crt`,
  };
}

/** The INFO line a NATS client port sends first (in the clear, before the TLS upgrade), parsed. */
function info(host: string, port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = netConnect(port, host);
    let buf = '';
    sock.on('data', (b: Buffer) => {
      buf += b.toString();
      if (!buf.includes('\r\n')) return;
      sock.destroy();
      resolve(JSON.parse((buf.split('\r\n')[0] ?? '').replace(/^INFO /, '')) as Record<string, unknown>);
    });
    sock.on('error', reject);
  });
}

/**
 * A TLS handshake on a route port: what the peer says first (`INFO …` for a node's certificate), or
 * the error it refuses a client without one with.
 */
function routeHello(host: string, clientCert: { cert: string; key: string } | null): Promise<string> {
  return new Promise((resolve) => {
    const sock = tlsConnect({
      host,
      port: 6222,
      ca: readFileSync(`${dir}/ca.crt`),
      servername: 'localhost',
      ...(clientCert ? { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) } : {}),
    });
    sock.once('data', (b: Buffer) => {
      sock.destroy();
      resolve(b.toString().slice(0, 5));
    });
    sock.once('error', (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code}`));
  });
}

async function jsz(host: string): Promise<{ meta_cluster?: { leader?: string; cluster_size?: number } }> {
  const r = await fetch(`http://${host}:8222/jsz`, { signal: AbortSignal.timeout(2000) });
  return (await r.json()) as never;
}

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-deploy-test-`);
  bin = ensureNatsServer(() => undefined);
  makeCertificates(
    ensureDebianProgram({
      candidates: ['/usr/bin/openssl'],
      pkg: 'openssl',
      why: 'test certificates',
      log: () => undefined,
    }),
  );
  t = await createTestEnv();
  conf = `${dir}/nats-cluster.conf`;
  copyFileSync(shipped, conf);
  // The operator's command, as the README gives it (its users for this test's bus prefix).
  execFileSync(
    process.execPath,
    ['infra/bootstrap.mjs', 'nats-users.ts', '--out', `${dir}/crowbar-users.conf`, '--prefix', t.prefix],
    { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  creds = JSON.parse(readFileSync(`${dir}/crowbar-users.credentials.json`, 'utf8')) as Record<string, string>;
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.exitCode !== null || s.signalCode !== null) return resolve();
          s.once('exit', () => resolve());
          s.kill('SIGTERM');
          setTimeout(() => s.kill('SIGKILL'), 5000).unref();
        }),
    ),
  );
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('infra/deploy/nats-cluster.conf', () => {
  it('passes nats-server -t with the environment its header names', () => {
    const r = spawnSync(bin, ['-t', '-c', conf], {
      env: { ...process.env, ...nodeEnv(0) },
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).toMatch(/configuration file .*nats-cluster\.conf is valid/);
    expect(r.status).toBe(0);
  });

  it('fails nats-server -t naming the variable when one is missing', () => {
    const { NATS_TLS_CA: _gone, ...partial } = nodeEnv(0);
    const r = spawnSync(bin, ['-t', '-c', conf], {
      env: { PATH: process.env.PATH ?? '', ...partial },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/variable reference for 'NATS_TLS_CA'/);
  });

  it('three nodes form a TLS cluster; a service connects over TLS and answers through another node', async () => {
    hosts.forEach((_, i) => {
      mkdirSync(`${dir}/store-${i + 1}`);
      servers.push(
        spawn(bin, ['-c', conf, '-l', `${dir}/nats-${i + 1}.log`], {
          env: { ...process.env, ...nodeEnv(i) },
          stdio: 'ignore',
        }),
      );
    });
    for (const h of hosts) await waitFor(`nats-server on ${h}`, () => isListening(h, 4222), 15_000);
    // Clients are offered TLS only; a route needs a certificate of the cluster's CA (mutual TLS).
    for (const h of hosts) expect(await info(h, 4222)).toMatchObject({ tls_required: true });
    expect(await routeHello(hosts[0]!, null)).toMatch(/^refused: ERR_SSL_.*BAD_CERTIFICATE/);
    expect(await routeHello(hosts[0]!, { cert: `${dir}/nats-2.crt`, key: `${dir}/nats-2.key` })).toBe(
      'INFO ',
    );
    // The routes came up (mutual TLS) and JetStream elected a meta leader over them.
    for (const h of hosts)
      await waitFor(
        `${h} in a JetStream cluster of three with a meta leader`,
        async () => {
          const m = (await jsz(h).catch(() => ({}) as Awaited<ReturnType<typeof jsz>>)).meta_cluster;
          return m?.cluster_size === 3 && /^nats-[123]$/.test(m.leader ?? '');
        },
        30_000,
      );

    // A service (the gateway) on node 1 as its own user, the operator's admin user on node 3, both over
    // TLS with the CA file.
    const url = (user: string, h: string) => `tls://${user}:${encodeURIComponent(creds[user]!)}@${h}:4222`;
    stack = await startStack(t, ['gateway'], { NATS_TLS_CA: `${dir}/ca.crt` }, (name) => ({
      NATS_URL: url(name, hosts[0]!),
    }));
    const bus = await Bus.connect({
      url: url('admin', hosts[2]!),
      tlsCa: `${dir}/ca.crt`,
      prefix: t.prefix,
      source: 'deploy-test',
      log: createLogger('t', { level: 'silent' }),
    });
    try {
      const report = await bus.request(health.gateway, {}, { timeoutMs: 5000 });
      expect(report).toMatchObject({ service: 'gateway', status: 'up' });
      // The gateway's streams were made on the cluster.
      const names: string[] = [];
      for await (const n of bus.jsm.streams.names()) names.push(n);
      expect(names).toContain(`${t.prefix.toUpperCase()}_EVENTS`);
    } finally {
      await bus.close();
    }
    // jig-runner's user may not delete a stream, nor ask inventory's API: refused by the cluster.
    const runner = await Bus.connect({
      url: url('jig-runner', hosts[1]!),
      tlsCa: `${dir}/ca.crt`,
      prefix: t.prefix,
      source: 'deploy-test-runner',
      service: 'jig-runner',
      log: createLogger('t', { level: 'silent' }),
    });
    try {
      await expect(runner.jsm.streams.delete(`${t.prefix.toUpperCase()}_EVENTS`)).rejects.toThrow(
        /Permissions Violation for Publish/,
      );
    } finally {
      await runner.close();
    }
    // Without the CA the servers' certificates are not trusted: no connection.
    await expect(
      Bus.connect({
        url: url('gateway', hosts[1]!),
        prefix: t.prefix,
        source: 'no-ca',
        log: createLogger('t', { level: 'silent' }),
      }),
    ).rejects.toThrow(/cannot reach NATS at tls:\/\/gateway:\*\*\*@127\.0\.18\.2:4222/);
  }, 90_000);
});
