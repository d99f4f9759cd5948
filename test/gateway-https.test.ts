import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchWithCa } from '../infra/https-fetch.js';
import { type CertFiles, ensureSelfSignedCert } from '../infra/tls.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Run, runNode } from './helpers/process.js';
import { type Stack, startStack, testAdminToken } from './helpers/stack.js';

// The gateway over HTTPS (README "gateway", TLS): a certificate made the way `CROWBAR_TLS=self-signed`
// makes it, HTTPS answered with it, plain HTTP on the same port only for the node-facing routes, the
// real CLI binary over HTTPS, and bad certificate settings refused in one sentence.
const root = fileURLToPath(new URL('../', import.meta.url));
let t: TestEnv;
let s: Stack;
let dir: string;
let cert: CertFiles;
let port: number;
let ca: string;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-https-test-`);
  cert = ensureSelfSignedCert(`${dir}/tls`, () => undefined);
  ca = readFileSync(cert.certFile, 'utf8');
  t = await createTestEnv();
  s = await startStack(t, ['gateway'], { CROWBAR_TLS_CERT: cert.certFile, CROWBAR_TLS_KEY: cert.keyFile });
  port = s.services.get('gateway')!.detail().port as number;
}, 60_000);
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A child process, never a synchronous one: the gateway answers it from this process. */
const run = runNode;

const crowbar = (args: string[], env: Record<string, string | undefined> = {}) =>
  run([`${root}infra/cli/crowbar.mjs`, ...args], {
    HOME: dir,
    CROWBAR_CONFIG: `${dir}/config.json`,
    CROWBAR_ENDPOINT: `https://127.0.0.1:${port}`,
    CROWBAR_KEY: testAdminToken,
    CROWBAR_CACERT: undefined,
    ...env,
  });

/** One HTTP/1.0 request as the discovery agent sends it (busybox nc): written, then half-closed. */
function rawRequest(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = netConnect(port, '127.0.0.1', () => sock.end(request));
    let answer = '';
    sock.on('data', (b: Buffer) => {
      answer += b.toString();
    });
    sock.on('end', () => resolve(answer));
    sock.on('error', reject);
  });
}

describe('gateway HTTPS', () => {
  it('makes a self-signed certificate once: key mode 0600, names loopback, kept across starts', () => {
    expect(statSync(cert.keyFile).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(ca);
    expect(x509.subjectAltName).toMatch(/IP Address:127\.0\.0\.1/);
    expect(x509.subjectAltName).toMatch(/DNS:localhost/);
    expect(x509.checkHost('localhost')).toBe('localhost');
    expect(cert.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // A second start finds the same certificate, so clients that pinned it keep working.
    expect(ensureSelfSignedCert(`${dir}/tls`, () => undefined).fingerprint).toBe(cert.fingerprint);
  });

  it('answers HTTPS with that certificate', async () => {
    const presented = await new Promise<string>((resolve, reject) => {
      const sock = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        resolve(sock.getPeerX509Certificate()?.fingerprint256 ?? '');
        sock.end();
      });
      sock.on('error', reject);
    });
    expect(presented).toBe(cert.fingerprint);
    const r = await fetchWithCa(`https://127.0.0.1:${port}/api/v2/whoami`, ca, {
      headers: { authorization: `Bearer ${testAdminToken}` },
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ role: 'admin' });
    // A client that does not trust the certificate is refused by its own TLS check.
    const untrusted = await fetch(`https://127.0.0.1:${port}/api/v2/health`).catch((e: Error) => e);
    expect((untrusted as { cause?: { code?: string } }).cause?.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('plain HTTP on the same port: operator routes refused, the UI redirected, node-facing routes answered', async () => {
    const operator = await fetch(`http://127.0.0.1:${port}/api/v2/whoami`, {
      headers: { authorization: `Bearer ${testAdminToken}` },
    });
    expect(operator.status).toBe(403);
    expect(await operator.json()).toMatchObject({
      code: 'forbidden',
      rule: 'https required',
      message: expect.stringContaining(`https://127.0.0.1:${port}/api/v2/whoami`),
    });
    const ui = await fetch(`http://127.0.0.1:${port}/nodes?x=1`, { redirect: 'manual' });
    expect(ui.status).toBe(308);
    expect(ui.headers.get('location')).toBe(`https://127.0.0.1:${port}/nodes?x=1`);
    // Registration answers over plain HTTP (here 401: no discovery token), as the agent reaches it.
    const register = await fetch(`http://127.0.0.1:${port}/api/v2/node-api/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(register.status).toBe(401);
    expect(await register.json()).toMatchObject({ code: 'unauthorized' });
    // The agent's HTTP/1.0 request, half-closed after sending, is answered too (health: 503 here, as
    // only the gateway runs, with the gateway up).
    const agent = await rawRequest('GET /api/v2/health HTTP/1.0\r\nHost: x\r\n\r\n');
    expect(agent).toMatch(/^HTTP\/1\.[01] 503/);
    expect(agent).toMatch(/"service":"gateway","status":"up"/);
  });

  it('the crowbar CLI works over HTTPS with --cacert, CROWBAR_CACERT or the one saved by login', async () => {
    const refused = await crowbar(['whoami']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(
      /^crowbar: no Crowbar at https:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted/,
    );
    expect(refused.stderr).toMatch(/--cacert or set CROWBAR_CACERT/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);

    const flag = await crowbar(['whoami', '--cacert', cert.certFile, '--format', 'json']);
    expect(flag.stderr).toBe('');
    expect(JSON.parse(flag.stdout)).toEqual({ role: 'admin' });
    const created = await crowbar(['tokens', 'create', 'over-https', '--format', 'json'], {
      CROWBAR_CACERT: cert.certFile,
    });
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout).token).toMatch(/^cbt_/);

    // The event stream too (a streamed answer): it ends after --idle without an event.
    const events = await crowbar(['events', '--idle', '300'], { CROWBAR_CACERT: cert.certFile });
    expect(events.stderr).toBe('');
    expect(events.code).toBe(0);

    const login = await crowbar(['login'], { CROWBAR_CACERT: cert.certFile });
    expect(login.code).toBe(0);
    expect(JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'))).toMatchObject({
      endpoint: `https://127.0.0.1:${port}`,
      cacert: cert.certFile,
    });
    const saved = await crowbar(['tokens', 'list', '--format', 'json'], {
      CROWBAR_ENDPOINT: undefined,
      CROWBAR_KEY: undefined,
    });
    expect(saved.stderr).toBe('');
    expect(JSON.parse(saved.stdout).tokens.map((x: { name: string }) => x.name)).toContain('over-https');

    const missing = await crowbar(['whoami'], { CROWBAR_CACERT: `${dir}/nope.crt` });
    expect(missing.code).toBe(64);
    expect(missing.stderr).toBe(
      `crowbar: cannot read the CA file ${dir}/nope.crt (--cacert or CROWBAR_CACERT)\n`,
    );
  });
});

describe('bad TLS settings', () => {
  /** The gateway as its own process, as the launcher runs it; it must stop before serving anything. */
  const gateway = (env: Record<string, string>) =>
    run(['--import', 'tsx', `${root}services/gateway/index.ts`], {
      ...t.env,
      CROWBAR_HTTP_HOST: '127.0.0.1',
      CROWBAR_HTTP_PORT: '0',
      CROWBAR_ADMIN_TOKEN: testAdminToken,
      CROWBAR_TLS_CERT: undefined,
      CROWBAR_TLS_KEY: undefined,
      ...env,
    });
  const oneSentence = (r: Run, expected: RegExp) => {
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(expected);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  };

  it('a missing file, a file that is no certificate, a key of another certificate, a lone key', async () => {
    const other = ensureSelfSignedCert(`${dir}/other`, () => undefined);
    const cases: [Record<string, string>, RegExp][] = [
      [
        { CROWBAR_TLS_CERT: `${dir}/missing.crt`, CROWBAR_TLS_KEY: cert.keyFile },
        /^gateway: invalid configuration: CROWBAR_TLS_CERT names a certificate file that cannot be read: .*missing\.crt \(no such file\)$/,
      ],
      [
        { CROWBAR_TLS_CERT: cert.keyFile, CROWBAR_TLS_KEY: cert.keyFile },
        /^gateway: invalid configuration: CROWBAR_TLS_CERT is not a PEM certificate: /,
      ],
      [
        { CROWBAR_TLS_CERT: cert.certFile, CROWBAR_TLS_KEY: cert.certFile },
        /^gateway: invalid configuration: CROWBAR_TLS_KEY is not an unencrypted PEM private key: /,
      ],
      [
        { CROWBAR_TLS_CERT: cert.certFile, CROWBAR_TLS_KEY: other.keyFile },
        /^gateway: invalid configuration: CROWBAR_TLS_KEY \(.*other\/gateway\.key\) is not the private key of the certificate in CROWBAR_TLS_CERT/,
      ],
      [
        { CROWBAR_TLS_KEY: cert.keyFile },
        /^gateway: invalid configuration: CROWBAR_TLS_CERT is not set: CROWBAR_TLS_CERT and CROWBAR_TLS_KEY go together/,
      ],
    ];
    const results = await Promise.all(cases.map(([env]) => gateway(env)));
    for (const [i, r] of results.entries()) oneSentence(r, cases[i]![1]);
  }, 120_000);

  it('npm start says it in one sentence before starting anything', async () => {
    const launcher = (env: Record<string, string>, state = `${dir}/state`) =>
      run([`${root}infra/bootstrap.mjs`, 'launcher.ts', '--state-dir', state], {
        NATS_URL: undefined,
        DATABASE_URL: undefined,
        CROWBAR_HTTP_PORT: '0',
        ...env,
      });
    // A cluster SSH key that is no key (truncated, or written by a tool that failed).
    mkdirSync(`${dir}/state-badkey/ssh`, { recursive: true, mode: 0o700 });
    writeFileSync(`${dir}/state-badkey/ssh/id_ed25519`, 'not a key\n', { mode: 0o600 });
    const [missing, bogus, badKey] = await Promise.all([
      launcher({ CROWBAR_TLS_CERT: `${dir}/missing.crt`, CROWBAR_TLS_KEY: cert.keyFile }),
      launcher({ CROWBAR_TLS: 'yes' }),
      launcher({}, `${dir}/state-badkey`),
    ]);
    for (const [r, expected] of [
      [
        missing,
        /\[crowbar\] invalid configuration: CROWBAR_TLS_CERT names a certificate file that cannot be read/,
      ],
      [bogus, /\[crowbar\] invalid configuration: CROWBAR_TLS must be self-signed or unset \(got "yes"\)/],
      [
        badKey,
        /\[crowbar\] invalid configuration: the cluster SSH key \S+state-badkey\/ssh\/id_ed25519 is not an unencrypted OpenSSH private key: replace it, or remove it/,
      ],
    ] as const) {
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(expected);
      expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).not.toMatch(/nats-server|PostgreSQL/);
    }
  }, 120_000);
});
