/**
 * The launcher's side of the gateway's TLS: a self-signed certificate made at start (`CROWBAR_TLS=
 * self-signed`), the pair checked before anything starts, and requests to the local gateway over HTTPS.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { loadTls } from '../services/gateway/tls.js';
import { ConfigError } from '../shared/config.js';
import { fetchWithCa } from './https-fetch.js';
import { ensureDebianProgram } from './packages.js';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  fingerprint: string;
}

/** Names and addresses the certificate is good for: this machine's name, loopback and its addresses. */
export function subjectAltNames(): string[] {
  const host = hostname();
  const ips = new Set(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (!a.internal && !a.address.startsWith('fe80:')) ips.add(a.address);
  const dns = [...new Set(['localhost', host, host.split('.')[0] ?? host])].filter(
    (n) => /^[a-z0-9.-]+$/i.test(n) && n.length > 0,
  );
  return [...dns.map((n) => `DNS:${n}`), ...[...ips].map((ip) => `IP:${ip}`)];
}

/**
 * The gateway's self-signed certificate in `dir` (`gateway.crt`, `gateway.key` mode 0600): made once
 * with openssl (installed as Debian's package when missing, as root), made again when it is within 30
 * days of expiry. The same certificate across restarts keeps clients that pinned it working.
 */
export function ensureSelfSignedCert(dir: string, log: (line: string) => void): CertFiles {
  const certFile = `${dir}/gateway.crt`;
  const keyFile = `${dir}/gateway.key`;
  if (existsSync(certFile) && existsSync(keyFile)) {
    const x509 = new X509Certificate(readFileSync(certFile));
    if (new Date(x509.validTo).getTime() - Date.now() > 30 * 86_400_000)
      return { certFile, keyFile, fingerprint: x509.fingerprint256 };
    log(`the gateway's self-signed certificate expires ${x509.validTo}: making a new one`);
  }
  const openssl = ensureDebianProgram({
    candidates: ['/usr/bin/openssl'],
    pkg: 'openssl',
    why: 'it makes the gateway a self-signed certificate (CROWBAR_TLS=self-signed)',
    log,
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmpKey = `${keyFile}.new`;
  const tmpCert = `${certFile}.new`;
  try {
    execFileSync(
      openssl,
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', tmpKey, '-out', tmpCert, '-days', '825', '-subj', `/CN=${hostname()}`],
        ...['-addext', `subjectAltName=${subjectAltNames().join(',')}`],
        ...['-addext', 'basicConstraints=critical,CA:FALSE'],
        ...['-addext', 'keyUsage=critical,digitalSignature'],
        ...['-addext', 'extendedKeyUsage=serverAuth'],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    rmSync(tmpKey, { force: true });
    rmSync(tmpCert, { force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n')[0] ?? '';
    throw new Error(`openssl could not make the gateway's self-signed certificate: ${stderr}`, {
      cause: err,
    });
  }
  chmodSync(tmpKey, 0o600);
  renameSync(tmpKey, keyFile);
  renameSync(tmpCert, certFile);
  const fingerprint = new X509Certificate(readFileSync(certFile)).fingerprint256;
  log(`made the gateway's self-signed certificate ${certFile} (SHA-256 ${fingerprint})`);
  return { certFile, keyFile, fingerprint };
}

/**
 * The launcher's side of the gateway's TLS: `CROWBAR_TLS=self-signed` (without CROWBAR_TLS_CERT/KEY)
 * makes the certificate in `dir` and sets both in `env`; then the pair is checked as the gateway will
 * (a ConfigError naming the variable). Null without TLS.
 */
export function gatewayTls(
  env: Record<string, string | undefined>,
  dir: string,
  log: (line: string) => void,
): { ca: string; note: string } | null {
  if (env.CROWBAR_TLS && env.CROWBAR_TLS !== 'self-signed')
    throw new ConfigError([
      `CROWBAR_TLS must be self-signed or unset (got ${JSON.stringify(env.CROWBAR_TLS)})`,
    ]);
  if (env.CROWBAR_TLS === 'self-signed' && !env.CROWBAR_TLS_CERT && !env.CROWBAR_TLS_KEY) {
    const made = ensureSelfSignedCert(dir, log);
    env.CROWBAR_TLS_CERT = made.certFile;
    env.CROWBAR_TLS_KEY = made.keyFile;
  }
  const tls = loadTls(env.CROWBAR_TLS_CERT, env.CROWBAR_TLS_KEY);
  if (!tls) return null;
  return {
    ca: tls.cert,
    note: `TLS certificate ${env.CROWBAR_TLS_CERT}, SHA-256 fingerprint ${tls.fingerprint} (machines use the node API over plain HTTP on the same port)`,
  };
}

/**
 * A request to the gateway on this machine: over HTTPS trusting `ca` when it serves HTTPS (the
 * certificate must then name 127.0.0.1, as the self-signed one does), else plain HTTP.
 */
export function gatewayFetch(
  port: number,
  path: string,
  ca: string | undefined,
  headers: Record<string, string>,
): Promise<Response> {
  const signal = AbortSignal.timeout(3000);
  if (!ca) return fetch(`http://127.0.0.1:${port}${path}`, { headers, signal });
  return fetchWithCa(`https://127.0.0.1:${port}${path}`, ca, { headers, signal });
}
