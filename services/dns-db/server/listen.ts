import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from '../../../shared/log.js';
import { headerReply } from '../domain/answer.js';
import type { ResponseRateLimiter } from '../domain/rrl.js';
import type { DnsEngine } from './engine.js';

export interface ListenOptions {
  addresses: string[];
  /** 0 picks a free port (tests); the same port is used for UDP and TCP on every address. */
  port: number;
  engine: DnsEngine;
  rrl: ResponseRateLimiter;
  tcpIdleMs: number;
  maxTcpConnections: number;
  /** How long to wait before trying again to bind an address that failed (port 53 taken, ...). */
  retryBindMs: number;
  log: Logger;
}

export interface DnsListener {
  /** The bound port (the configured one, or the picked one for 0); null until something is bound. */
  port(): number | null;
  status(): { address: string; listening: boolean; error: string | null }[];
  stats: { tcpConnections: number; tcpRejected: number; tcpTimeouts: number };
  stop(): Promise<void>;
}

interface Endpoint {
  address: string;
  udp: UdpSocket | null;
  tcp: Server | null;
  error: string | null;
}

/** The listener's state, shared by its parts: endpoints, open TCP connections, the port, the retry timer. */
interface ListenCtx {
  opts: ListenOptions;
  endpoints: Endpoint[];
  stats: DnsListener['stats'];
  conns: Set<Socket>;
  port: number | null;
  stopped: boolean;
  timer: NodeJS.Timeout | null;
}

/**
 * UDP and TCP sockets for the DNS server. A failed bind is logged once per attempt and retried on a
 * timer; the rest of dns-db keeps working meanwhile (a shared machine may already have port 53 taken).
 */
export function listenDns(opts: ListenOptions): DnsListener {
  const ctx: ListenCtx = {
    opts,
    endpoints: opts.addresses.map((address) => ({ address, udp: null, tcp: null, error: null })),
    stats: { tcpConnections: 0, tcpRejected: 0, tcpTimeouts: 0 },
    conns: new Set(),
    port: opts.port === 0 ? null : opts.port,
    stopped: false,
    timer: null,
  };
  const ready = bindMissing(ctx);
  return {
    port: () => ctx.port,
    status: () =>
      ctx.endpoints.map((e) => ({ address: e.address, listening: e.udp !== null, error: e.error })),
    stats: ctx.stats,
    async stop() {
      ctx.stopped = true;
      await ready;
      if (ctx.timer) clearTimeout(ctx.timer);
      for (const c of ctx.conns) c.destroy();
      await Promise.all(ctx.endpoints.map(closeEndpointAndWait));
    },
  };
}

/** Binds every address not bound yet; while any is missing, tries again after `retryBindMs`. */
async function bindMissing(ctx: ListenCtx): Promise<void> {
  for (const e of ctx.endpoints) if (!e.udp && !ctx.stopped) await bindEndpoint(ctx, e);
  if (!ctx.stopped && ctx.endpoints.some((e) => !e.udp))
    ctx.timer = setTimeout(() => void bindMissing(ctx), ctx.opts.retryBindMs);
}

async function bindEndpoint(ctx: ListenCtx, e: Endpoint) {
  const { log } = ctx.opts;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      e.udp = await bindUdp(ctx, e.address, ctx.port ?? 0);
      const p = e.udp.address().port;
      e.tcp = await bindTcp(ctx, e.address, p);
      ctx.port = p;
      e.error = null;
      log.info({ address: e.address, port: p }, 'dns server listening (udp+tcp)');
      return;
    } catch (err) {
      closeEndpoint(e);
      e.error = `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim();
      if (ctx.port !== null) break; // a fixed port: retrying now will not help
    }
  }
  log.error(
    { address: e.address, port: ctx.opts.port, error: e.error, retryInMs: ctx.opts.retryBindMs },
    'dns server cannot listen; the rest of dns-db keeps running and binding is retried',
  );
}

function bindUdp(ctx: ListenCtx, address: string, p: number) {
  return new Promise<UdpSocket>((resolve, reject) => {
    const v6 = isIPv6(address);
    const s = createSocket({
      type: v6 ? 'udp6' : 'udp4',
      ...(v6 ? { ipv6Only: true } : {}),
      recvBufferSize: 4 << 20,
    });
    s.once('error', reject);
    s.bind({ address, port: p, exclusive: true }, () => {
      s.off('error', reject);
      s.on('error', (err) => ctx.opts.log.warn({ err, address }, 'dns udp socket error'));
      s.on('message', (msg, rinfo) => onDatagram(ctx, s, msg, rinfo));
      resolve(s);
    });
  });
}

function bindTcp(ctx: ListenCtx, address: string, p: number) {
  return new Promise<Server>((resolve, reject) => {
    const s = createServer((sock) => onConnection(ctx, sock));
    s.once('error', reject);
    s.listen({ host: address, port: p, ...(isIPv6(address) ? { ipv6Only: true } : {}), backlog: 128 }, () => {
      s.off('error', reject);
      s.on('error', (err) => ctx.opts.log.warn({ err, address }, 'dns tcp listener error'));
      resolve(s);
    });
  });
}

function closeEndpoint(e: Endpoint) {
  e.udp?.close();
  e.tcp?.close();
  e.udp = null;
  e.tcp = null;
}

async function closeEndpointAndWait(e: Endpoint) {
  await new Promise<void>((r) => (e.udp ? e.udp.close(() => r()) : r()));
  await new Promise<void>((r) => (e.tcp ? e.tcp.close(() => r()) : r()));
  e.udp = null;
  e.tcp = null;
}

function onDatagram(ctx: ListenCtx, udp: UdpSocket, msg: Buffer, rinfo: { address: string; port: number }) {
  const verdict = ctx.opts.rrl.check(rinfo.address);
  if (verdict === 'drop') return;
  if (verdict === 'slip') {
    if (msg.length >= 12 && !(msg[2]! & 0x80))
      udp.send(
        headerReply(msg.readUInt16BE(0), msg.readUInt16BE(2), 0, null, true),
        rinfo.port,
        rinfo.address,
      );
    return;
  }
  for (const out of ctx.opts.engine.answer(msg, 'udp', rinfo.address))
    udp.send(out, rinfo.port, rinfo.address);
}

function onConnection(ctx: ListenCtx, sock: Socket) {
  const { opts, stats, conns } = ctx;
  if (conns.size >= opts.maxTcpConnections) {
    stats.tcpRejected++;
    sock.destroy();
    return;
  }
  stats.tcpConnections++;
  conns.add(sock);
  sock.setNoDelay(true);
  sock.setTimeout(opts.tcpIdleMs, () => {
    stats.tcpTimeouts++;
    sock.destroy();
  });
  sock.on('error', () => undefined);
  sock.on('close', () => conns.delete(sock));
  const address = sock.remoteAddress ?? '';
  let pending: Buffer = Buffer.alloc(0);
  let partialSince = 0;
  sock.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const rest = answerFrames(ctx, sock, address, pending);
    if (rest === null) return;
    pending = rest;
    // A client that trickles a frame byte by byte, or stops reading our answers, loses its slot.
    if (pending.length > 0) partialSince ||= Date.now();
    else partialSince = 0;
    if ((partialSince && Date.now() - partialSince > opts.tcpIdleMs) || sock.writableLength > 1 << 20)
      sock.destroy();
  });
}

/**
 * Answers the whole frames in `pending` (RFC 7766 length framing; several queries may arrive in one
 * segment: pipelining) and returns what is left; null when the connection was closed.
 */
function answerFrames(ctx: ListenCtx, sock: Socket, address: string, pending: Buffer): Buffer | null {
  let rest = pending;
  for (let frames = 0; frames < 1000 && rest.length >= 2; frames++) {
    const len = rest.readUInt16BE(0);
    if (len < 12) {
      sock.destroy(); // cannot even hold a header: not a DNS client
      return null;
    }
    if (rest.length < 2 + len) break;
    const frame = rest.subarray(2, 2 + len);
    rest = rest.subarray(2 + len);
    for (const out of ctx.opts.engine.answer(frame, 'tcp', address)) {
      const framed = Buffer.allocUnsafe(out.length + 2);
      framed.writeUInt16BE(out.length, 0);
      out.copy(framed, 2);
      sock.write(framed);
    }
  }
  return rest;
}

/** Resolves once the first bind attempt of every address has finished (tests need the port). */
export async function waitListening(l: DnsListener, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (l.status().every((s) => s.listening || s.error !== null)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
