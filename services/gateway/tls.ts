import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createAdaptorServer, type ServerType, serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { ConfigError } from '../../shared/config.js';

/** The gateway's certificate and key as read from CROWBAR_TLS_CERT / CROWBAR_TLS_KEY. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** SHA-256 of the certificate (DER), `AB:CD:…`, for operators and clients to pin. */
  fingerprint: string;
  notAfter: Date;
}

function readPem(variable: string, path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new ConfigError([`${variable} names a ${what} file that cannot be read: ${path} (${why})`]);
  }
}

/**
 * Reads and checks the TLS pair: both set or neither, a PEM certificate, a PEM private key, and the key
 * belonging to the certificate. Every problem is a ConfigError naming the variable, so `npm start` and
 * the gateway process say it in one sentence. Null when neither is set (plain HTTP).
 */
export function loadTls(certPath: string | undefined, keyPath: string | undefined): TlsFiles | null {
  if (!certPath && !keyPath) return null;
  if (!certPath || !keyPath)
    throw new ConfigError([
      `${certPath ? 'CROWBAR_TLS_KEY' : 'CROWBAR_TLS_CERT'} is not set: CROWBAR_TLS_CERT and CROWBAR_TLS_KEY go together (PEM files), set both or neither`,
    ]);
  const cert = readPem('CROWBAR_TLS_CERT', certPath, 'certificate');
  const key = readPem('CROWBAR_TLS_KEY', keyPath, 'private key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new ConfigError([`CROWBAR_TLS_CERT is not a PEM certificate: ${certPath}`]);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError([`CROWBAR_TLS_KEY is not an unencrypted PEM private key: ${keyPath}`]);
  }
  if (!x509.checkPrivateKey(privateKey))
    throw new ConfigError([
      `CROWBAR_TLS_KEY (${keyPath}) is not the private key of the certificate in CROWBAR_TLS_CERT (${certPath})`,
    ]);
  return { cert, key, fingerprint: x509.fingerprint256, notAfter: new Date(x509.validTo) };
}

/**
 * Paths a machine reaches over plain HTTP even when the gateway serves HTTPS: the discovery agent
 * (busybox nc) and the join script speak no TLS. They carry only node credentials and discovery or join
 * tokens, which travel over the provisioning network in the clear anyway (PXE, TFTP, the iPXE script).
 * Health is public and is what load balancers ask.
 */
export const plainHttpPaths = [/^\/api\/v2\/node-api\//, /^\/api\/v2\/health$/];

/**
 * Plain HTTP on the TLS port: the node-facing routes are answered; the rest of the API is refused (403
 * `https_required`, so no operator token is ever accepted in the clear), and a browser asking for the
 * UI is redirected to https.
 */
function plainFetch(app: Hono): (req: Request, env: unknown) => Response | Promise<Response> {
  return (req, env) => {
    const url = new URL(req.url);
    if (plainHttpPaths.some((p) => p.test(url.pathname))) return app.fetch(req, env);
    const https = `https://${url.host}${url.pathname}${url.search}`;
    if (url.pathname.startsWith('/api/'))
      return Response.json(
        {
          code: 'forbidden',
          message: `this gateway takes operator requests over HTTPS only: use ${https}`,
          rule: 'https required',
        },
        { status: 403 },
      );
    return new Response(null, { status: 308, headers: { location: https } });
  };
}

export interface Listening {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on `host:port`: plain HTTP without TLS files; with them, HTTPS and plain HTTP on the same
 * port, told apart by the connection's first byte (a TLS ClientHello starts with 0x16), so machines
 * keep the URL the provisioner gave them.
 */
export async function listen(
  app: Hono,
  opts: { host: string; port: number; tls: TlsFiles | null },
): Promise<Listening> {
  if (!opts.tls) {
    const server: ServerType = await new Promise((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: opts.host, port: opts.port }, () => resolve(s));
      s.once('error', reject);
    });
    halfOpen(server as HttpServer);
    return { port: portOf(server as HttpServer, opts.port), close: () => closeAll([server as HttpServer]) };
  }
  const plain = createAdaptorServer({ fetch: plainFetch(app), createServer: createHttpServer }) as HttpServer;
  const secure = createAdaptorServer({
    fetch: app.fetch,
    createServer: createHttpsServer,
    // A client that starts a handshake and leaves it (one that distrusts the certificate) is dropped.
    serverOptions: { cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: 10_000 },
  }) as HttpServer;
  halfOpen(plain);
  // Every connection, so a stop can end the ones still open after the grace period (a client that
  // abandoned its TLS handshake is known to neither inner server).
  const sockets = new Set<Socket>();
  const front: NetServer = createNetServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    dispatch(socket, plain, secure);
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(opts.port, opts.host, () => resolve());
  });
  // The inner servers never listen themselves; 'listening' is what starts their connection tracking
  // (request and headers timeouts, closing idle keep-alive connections at stop).
  plain.emit('listening');
  secure.emit('listening');
  return {
    port: portOf(front, opts.port),
    close: async () => {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      const force = setTimeout(() => {
        plain.closeAllConnections();
        secure.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }, 5000);
      // Their close ends idle connections at once (and answers "not running", which is no news).
      plain.close(() => undefined);
      secure.close(() => undefined);
      await closed;
      clearTimeout(force);
    },
  };
}

/** Hands a new connection to the HTTPS or the plain server by its first byte. */
function dispatch(socket: Socket, plain: HttpServer, secure: HttpServer) {
  // A connection that says nothing is not kept for ever (the inner servers' timeouts start later).
  const silent = () => socket.destroy();
  socket.setTimeout(30_000, silent);
  // Errors end the connection whoever holds it, and never go unhandled.
  socket.on('error', silent);
  socket.once('end', silent);
  socket.once('data', (first: Buffer) => {
    socket.setTimeout(0);
    socket.removeListener('timeout', silent);
    socket.removeListener('end', silent);
    socket.pause();
    socket.unshift(first);
    const tls = first[0] === 0x16;
    // Half-open is for plain HTTP clients that shut their side after the request (nc); a TLS peer's
    // end must end the connection, or one that gave up during the handshake would linger.
    if (tls) socket.allowHalfOpen = false;
    (tls ? secure : plain).emit('connection', socket);
    process.nextTick(() => socket.resume());
  });
  socket.resume();
}

// Small HTTP clients (a discovery image's nc, BMC firmware) close their sending side after the
// request; Node would then abort the request before it is answered. Keep the socket half open.
function halfOpen(server: HttpServer) {
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
}

function portOf(server: NetServer, fallback: number): number {
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : fallback;
}

/** Stops a listening server: idle keep-alive connections at once, the rest after 5 s. */
function closeAll(servers: HttpServer[]): Promise<void> {
  return Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => s.closeAllConnections(), 5000);
          s.close(() => {
            clearTimeout(force);
            resolve();
          });
        }),
    ),
  ).then(() => undefined);
}
