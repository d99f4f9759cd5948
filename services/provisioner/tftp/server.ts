/**
 * The provisioner's TFTP server: read requests only, each transfer on its own ephemeral UDP socket
 * connected to the client (the kernel then keeps other peers out and reports an unreachable client).
 * Files are read in bounded chunks, never whole; a transfer keeps only its window's packets. DATA is sent
 * on start and on a new ACK, again only on timeout (never on a duplicate ACK: no sorcerer's apprentice),
 * and block numbers roll over from 65535 to 0 as tftp-hpa and iPXE expect.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { availableParallelism } from 'node:os';
import type { Logger } from '../../../shared/log.js';
import { rateLimitedLog } from '../../../shared/rate-limited-log.js';
import {
  ErrorCode,
  encodeError,
  type Negotiated,
  negotiate,
  PacketError,
  parsePacket,
  type TftpRequest,
} from './packet.js';
import { bootRoot, openBootFile, PathError } from './paths.js';
import { transferSocket } from './socket.js';
import { type TftpTransfer, Transfer } from './transfer.js';
import { type ActiveTransfer, TransferThreads } from './transfer-threads.js';

export type { TftpTransfer };

export interface TftpStats {
  /** RRQ and WRQ datagrams on the server port. */
  requests: number;
  served: number;
  /** Requests refused with an ERROR and transfers that failed after they started. */
  failed: number;
  /** Why datagrams, requests and transfers were not served, by reason (a metric label). */
  dropped: Record<string, number>;
  active: number;
}

export interface TftpServer {
  port: number;
  /** Transfer threads moving the blocks now (0: transfers run on the server's thread; fewer after a thread is lost). */
  readonly threads: number;
  stats: TftpStats;
  stop(): Promise<void>;
}

export interface TftpServerOptions {
  root: string;
  /** Default '0.0.0.0'. */
  address?: string;
  /** 69; 0 takes any free port (tests). */
  port: number;
  log: Logger;
  /** Once per finished, failed or refused request. */
  onTransfer?: (t: TftpTransfer) => void;
  /** Concurrent transfers; requests over it are dropped unanswered, so the client asks again. Default 256. */
  maxTransfers?: number;
  /** Concurrent transfers per client address. Default 16. */
  maxPerClient?: number;
  /** Retransmissions without progress before a transfer is dropped. Default 5. */
  retries?: number;
  /** Retransmission timeout unless the client negotiates one. Default 1000 ms. */
  timeoutMs?: number;
  /** Bytes in flight per transfer; a larger windowsize is answered with less. Default 256 KiB. */
  maxWindowBytes?: number;
  /**
   * Threads that move the blocks (requests are taken on the server's own): default one per core, at
   * most 4; 0 runs every transfer on the server's thread. A pool already started (TransferThreads.start)
   * is used as it is and stopped with the server.
   */
  threads?: number | TransferThreads | null;
}

/** A running server's settings, counters and transfers under way, shared by its parts. */
interface ServerCtx {
  root: string;
  address: string;
  family: 'udp4' | 'udp6';
  maxTransfers: number;
  maxPerClient: number;
  retries: number;
  timeoutMs: number;
  maxWindowBytes: number;
  log: Logger;
  onTransfer: ((t: TftpTransfer) => void) | undefined;
  stats: TftpStats;
  /** By client address:port, from the request on (a retransmitted RRQ must not start a second transfer). */
  active: Map<string, ActiveTransfer | null>;
  /** Where transfers run; null: on this thread. */
  threads: TransferThreads | null;
  perClient: Map<string, number>;
  pending: Set<Promise<void>>;
  stopping: boolean;
  /** The server port's socket: requests arrive here, and refusals are answered from it. */
  main: Socket;
  refusedLog: ReturnType<typeof rateLimitedLog>;
}

export async function startTftpServer(opts: TftpServerOptions): Promise<TftpServer> {
  const address = opts.address ?? '0.0.0.0';
  const family = address.includes(':') ? 'udp6' : 'udp4';
  const log = opts.log;
  const ctx: ServerCtx = {
    root: await bootRoot(opts.root),
    address,
    family,
    maxTransfers: opts.maxTransfers ?? 256,
    maxPerClient: opts.maxPerClient ?? 16,
    retries: opts.retries ?? 5,
    timeoutMs: opts.timeoutMs ?? 1000,
    maxWindowBytes: opts.maxWindowBytes ?? 256 * 1024,
    log,
    onTransfer: opts.onTransfer,
    stats: { requests: 0, served: 0, failed: 0, dropped: {}, active: 0 },
    active: new Map(),
    perClient: new Map(),
    pending: new Set(),
    stopping: false,
    main: createSocket({ type: family }),
    threads:
      typeof opts.threads === 'object'
        ? opts.threads
        : await TransferThreads.start(opts.threads ?? Math.min(4, availableParallelism()), log),
    // A flood of `../` requests gives ten lines a minute per reason, not one per request.
    refusedLog: rateLimitedLog(log, 'warn', 'tftp request refused'),
  };
  const port = await listen(ctx, opts.port).catch(async (err: unknown) => {
    await ctx.threads?.stop();
    throw err;
  });
  log.info({ address, port, root: ctx.root, threads: ctx.threads?.size ?? 0 }, 'tftp server listening');

  return {
    port,
    get threads() {
      return ctx.threads?.size ?? 0;
    },
    stats: ctx.stats,
    async stop() {
      if (ctx.stopping) return;
      ctx.stopping = true;
      ctx.main.close();
      const transfers = [...ctx.active.values()];
      for (const t of transfers) t?.finish(false, 'server stopped', 'stopped');
      await Promise.allSettled([...ctx.pending, ...transfers.map((t) => t?.closed)]);
      await ctx.threads?.stop();
      log.info({ port }, 'tftp server stopped');
    },
  };
}

/** Binds the server port and starts taking requests; resolves with the port bound. */
async function listen(ctx: ServerCtx, port: number): Promise<number> {
  const { main, log } = ctx;
  main.on('message', (msg, rinfo) => {
    try {
      onRequest(ctx, msg, rinfo);
    } catch (err) {
      count(ctx, 'internal');
      log.error({ err, client: rinfo.address }, 'tftp request handling failed');
    }
  });
  await new Promise<void>((resolve, reject) => {
    main.once('error', (err) => {
      main.close();
      reject(err);
    });
    main.bind({ address: ctx.address, port }, () => {
      main.removeAllListeners('error');
      resolve();
    });
  });
  main.on('error', (err) => log.error({ err }, 'tftp server socket error'));
  return main.address().port;
}

function onRequest(ctx: ServerCtx, msg: Buffer, rinfo: RemoteInfo): void {
  const { stats, log } = ctx;
  const p = parseRequest(ctx, msg, rinfo);
  if (!p) return;
  if (p.op !== 'rrq' && p.op !== 'wrq') {
    count(ctx, 'not_a_request');
    return;
  }
  stats.requests++;
  if (p.op === 'wrq') {
    refuse(ctx, rinfo, p.file, ErrorCode.ACCESS_VIOLATION, 'writes are not allowed', 'write_refused');
    return;
  }
  const key = `${rinfo.address}:${rinfo.port}`;
  if (ctx.active.has(key)) {
    count(ctx, 'duplicate_request');
    return;
  }
  const mine = ctx.perClient.get(rinfo.address) ?? 0;
  if (stats.active >= ctx.maxTransfers || mine >= ctx.maxPerClient) {
    count(ctx, stats.active >= ctx.maxTransfers ? 'busy' : 'client_busy');
    log.debug({ client: rinfo.address, port: rinfo.port, file: p.file }, 'tftp request over the limit');
    return;
  }
  ctx.active.set(key, null);
  ctx.perClient.set(rinfo.address, mine + 1);
  stats.active++;
  const job = serve(ctx, p, rinfo, key).catch((err) => {
    log.error({ err, client: rinfo.address, file: p.file }, 'tftp request failed');
  });
  ctx.pending.add(job);
  void job.finally(() => ctx.pending.delete(job));
}

/** The datagram parsed; one that does not parse is counted (and answered with an ERROR where the code says so). */
function parseRequest(ctx: ServerCtx, msg: Buffer, rinfo: RemoteInfo): ReturnType<typeof parsePacket> | null {
  try {
    return parsePacket(msg);
  } catch (err) {
    if (!(err instanceof PacketError)) throw err;
    count(ctx, err.reason);
    if (err.answer !== null) {
      ctx.stats.requests++;
      ctx.stats.failed++;
      ctx.main.send(encodeError(err.answer, err.message), rinfo.port, rinfo.address);
    }
    ctx.log.debug({ client: rinfo.address, port: rinfo.port, reason: err.reason }, 'tftp datagram dropped');
    return null;
  }
}

/** The RRQ's file opened and its options agreed, then the transfer on a socket of its own. */
async function serve(ctx: ServerCtx, request: TftpRequest, rinfo: RemoteInfo, key: string): Promise<void> {
  const started = Date.now();
  const opened = await openRequest(ctx, request, rinfo);
  if (!opened) return;
  const { file, negotiated } = opened;
  const timeoutMs = negotiated.timeoutMs ?? ctx.timeoutMs;
  const done = (t: TftpTransfer, reason: string | null) => {
    release(ctx, rinfo);
    transferDone(ctx, t, reason);
  };
  const threaded = ctx.threads?.run(
    {
      handle: file.handle,
      size: file.size,
      request,
      client: rinfo,
      negotiated,
      address: ctx.address,
      family: ctx.family,
      timeoutMs,
      retries: ctx.retries,
      started,
    },
    done,
    (error) => socketFailed(ctx, request, rinfo, error),
  );
  if (threaded) {
    ctx.active.set(key, threaded);
    return;
  }
  const sock = await connectTo(ctx, request, rinfo);
  if (!sock) {
    await file.handle.close().catch(() => undefined);
    return;
  }
  ctx.log.debug({ client: rinfo.address, port: rinfo.port, file: request.file }, 'tftp transfer started');
  ctx.active.set(
    key,
    new Transfer({
      sock,
      handle: file.handle,
      size: file.size,
      request,
      client: rinfo,
      negotiated,
      timeoutMs,
      retries: ctx.retries,
      started,
      done,
    }),
  );
}

/** The file opened and the options agreed; a refusal is answered (unless stopping) and gives null. */
async function openRequest(ctx: ServerCtx, request: TftpRequest, rinfo: RemoteInfo) {
  let file: Awaited<ReturnType<typeof openBootFile>>;
  try {
    file = await openBootFile(ctx.root, request.file);
  } catch (err) {
    release(ctx, rinfo);
    if (!(err instanceof PathError)) throw err;
    if (!ctx.stopping) refuse(ctx, rinfo, request.file, err.answer, err.message, err.reason);
    return null;
  }
  let negotiated: Negotiated;
  try {
    negotiated = negotiate(request.options, request.mode, file.size, { maxWindowBytes: ctx.maxWindowBytes });
  } catch (err) {
    release(ctx, rinfo);
    await file.handle.close().catch(() => undefined);
    if (!(err instanceof PacketError)) throw err;
    if (!ctx.stopping)
      refuse(ctx, rinfo, request.file, err.answer ?? ErrorCode.OPTION_NEGOTIATION, err.message, err.reason);
    return null;
  }
  return { file, negotiated };
}

/** A socket of the transfer's own, connected to the client; null (counted unless stopping) when it fails. */
async function connectTo(ctx: ServerCtx, request: TftpRequest, rinfo: RemoteInfo): Promise<Socket | null> {
  try {
    if (ctx.stopping) throw new Error('stopping');
    const sock = await transferSocket(ctx.address, ctx.family, rinfo);
    if (!ctx.stopping) return sock;
    sock.close();
    throw new Error('stopping');
  } catch (err) {
    socketFailed(ctx, request, rinfo, err instanceof Error ? err.message : String(err));
    return null;
  }
}

/** The transfer's socket could not be made: released, and counted unless the server is stopping. */
function socketFailed(ctx: ServerCtx, request: TftpRequest, rinfo: RemoteInfo, error: string) {
  release(ctx, rinfo);
  if (ctx.stopping) return;
  count(ctx, 'socket');
  ctx.stats.failed++;
  ctx.log.error({ err: error, client: rinfo.address, file: request.file }, 'tftp transfer socket failed');
}

function count(ctx: ServerCtx, reason: string) {
  ctx.stats.dropped[reason] = (ctx.stats.dropped[reason] ?? 0) + 1;
}

function report(ctx: ServerCtx, t: TftpTransfer) {
  try {
    ctx.onTransfer?.(t);
  } catch (err) {
    ctx.log.error({ err, client: t.client, file: t.file }, 'tftp onTransfer failed');
  }
}

function release(ctx: ServerCtx, rinfo: RemoteInfo) {
  ctx.active.delete(`${rinfo.address}:${rinfo.port}`);
  const n = (ctx.perClient.get(rinfo.address) ?? 1) - 1;
  if (n <= 0) ctx.perClient.delete(rinfo.address);
  else ctx.perClient.set(rinfo.address, n);
  ctx.stats.active--;
}

function refuse(
  ctx: ServerCtx,
  rinfo: RemoteInfo,
  file: string,
  code: number,
  message: string,
  reason: string,
) {
  ctx.main.send(encodeError(code, message), rinfo.port, rinfo.address);
  ctx.stats.failed++;
  count(ctx, reason);
  if (reason === 'not_found')
    ctx.log.debug({ client: rinfo.address, port: rinfo.port, file, reason, code }, 'tftp request refused');
  else ctx.refusedLog(reason, { client: rinfo.address, port: rinfo.port, file, reason, code });
  report(ctx, {
    client: rinfo.address,
    port: rinfo.port,
    file,
    bytes: 0,
    ok: false,
    error: message,
    ms: 0,
    options: {},
  });
}

function transferDone(ctx: ServerCtx, t: TftpTransfer, reason: string | null) {
  if (t.ok) {
    ctx.stats.served++;
    ctx.log.info(
      { client: t.client, port: t.port, file: t.file, bytes: t.bytes, ms: t.ms, options: t.options },
      'tftp transfer served',
    );
  } else {
    ctx.stats.failed++;
    count(ctx, reason ?? 'failed');
    ctx.log.warn(
      { client: t.client, port: t.port, file: t.file, bytes: t.bytes, ms: t.ms, reason, error: t.error },
      'tftp transfer dropped',
    );
  }
  report(ctx, t);
}
