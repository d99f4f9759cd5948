/**
 * The provisioner's TFTP server: read requests only, each transfer on its own ephemeral UDP socket
 * connected to the client (the kernel then keeps other peers out and reports an unreachable client).
 * Files are read in bounded chunks, never whole; a transfer keeps only its window's packets. DATA is sent
 * on start and on a new ACK, again only on timeout (never on a duplicate ACK: no sorcerer's apprentice),
 * and block numbers roll over from 65535 to 0 as tftp-hpa and iPXE expect.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
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
import { type TftpTransfer, Transfer } from './transfer.js';

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
}

export async function startTftpServer(opts: TftpServerOptions): Promise<TftpServer> {
  const root = await bootRoot(opts.root);
  const address = opts.address ?? '0.0.0.0';
  const family = address.includes(':') ? 'udp6' : 'udp4';
  const maxTransfers = opts.maxTransfers ?? 256;
  const maxPerClient = opts.maxPerClient ?? 16;
  const retries = opts.retries ?? 5;
  const timeoutMs = opts.timeoutMs ?? 1000;
  const maxWindowBytes = opts.maxWindowBytes ?? 256 * 1024;
  const log = opts.log;
  const stats: TftpStats = { requests: 0, served: 0, failed: 0, dropped: {}, active: 0 };
  /** By client address:port, from the request on (a retransmitted RRQ must not start a second transfer). */
  const active = new Map<string, Transfer | null>();
  const perClient = new Map<string, number>();
  const pending = new Set<Promise<void>>();
  let stopping = false;

  const count = (reason: string) => {
    stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1;
  };
  const report = (t: TftpTransfer) => {
    try {
      opts.onTransfer?.(t);
    } catch (err) {
      log.error({ err, client: t.client, file: t.file }, 'tftp onTransfer failed');
    }
  };
  const release = (rinfo: RemoteInfo) => {
    active.delete(`${rinfo.address}:${rinfo.port}`);
    const n = (perClient.get(rinfo.address) ?? 1) - 1;
    if (n <= 0) perClient.delete(rinfo.address);
    else perClient.set(rinfo.address, n);
    stats.active--;
  };
  // A flood of `../` requests gives ten lines a minute per reason, not one per request.
  const refusedLog = rateLimitedLog(log, 'warn', 'tftp request refused');
  const refuse = (rinfo: RemoteInfo, file: string, code: number, message: string, reason: string) => {
    main.send(encodeError(code, message), rinfo.port, rinfo.address);
    stats.failed++;
    count(reason);
    if (reason === 'not_found')
      log.debug({ client: rinfo.address, port: rinfo.port, file, reason, code }, 'tftp request refused');
    else refusedLog(reason, { client: rinfo.address, port: rinfo.port, file, reason, code });
    report({
      client: rinfo.address,
      port: rinfo.port,
      file,
      bytes: 0,
      ok: false,
      error: message,
      ms: 0,
      options: {},
    });
  };

  const done = (t: TftpTransfer, reason: string | null) => {
    if (t.ok) {
      stats.served++;
      log.info(
        { client: t.client, port: t.port, file: t.file, bytes: t.bytes, ms: t.ms, options: t.options },
        'tftp transfer served',
      );
    } else {
      stats.failed++;
      count(reason ?? 'failed');
      log.warn(
        { client: t.client, port: t.port, file: t.file, bytes: t.bytes, ms: t.ms, reason, error: t.error },
        'tftp transfer dropped',
      );
    }
    report(t);
  };

  /** The RRQ's file opened and its options agreed, then the transfer on a socket of its own. */
  async function serve(request: TftpRequest, rinfo: RemoteInfo, key: string): Promise<void> {
    const started = Date.now();
    let file: Awaited<ReturnType<typeof openBootFile>>;
    try {
      file = await openBootFile(root, request.file);
    } catch (err) {
      release(rinfo);
      if (!(err instanceof PathError)) throw err;
      if (!stopping) refuse(rinfo, request.file, err.answer, err.message, err.reason);
      return;
    }
    let negotiated: Negotiated;
    try {
      negotiated = negotiate(request.options, request.mode, file.size, { maxWindowBytes });
    } catch (err) {
      release(rinfo);
      await file.handle.close().catch(() => undefined);
      if (!(err instanceof PacketError)) throw err;
      if (!stopping)
        refuse(rinfo, request.file, err.answer ?? ErrorCode.OPTION_NEGOTIATION, err.message, err.reason);
      return;
    }
    const sock = createSocket({ type: family });
    try {
      if (stopping) throw new Error('stopping');
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ address, port: 0 }, () => {
          sock.connect(rinfo.port, rinfo.address, () => {
            sock.off('error', reject);
            resolve();
          });
        });
      });
      if (stopping) throw new Error('stopping');
    } catch (err) {
      release(rinfo);
      try {
        sock.close();
      } catch {
        // never bound
      }
      await file.handle.close().catch(() => undefined);
      if (!stopping) {
        count('socket');
        stats.failed++;
        log.error({ err, client: rinfo.address, file: request.file }, 'tftp transfer socket failed');
      }
      return;
    }
    log.debug({ client: rinfo.address, port: rinfo.port, file: request.file }, 'tftp transfer started');
    active.set(
      key,
      new Transfer({
        sock,
        handle: file.handle,
        size: file.size,
        request,
        client: rinfo,
        negotiated,
        timeoutMs: negotiated.timeoutMs ?? timeoutMs,
        retries,
        started,
        done: (t, reason) => {
          release(rinfo);
          done(t, reason);
        },
      }),
    );
  }

  function onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    let p: ReturnType<typeof parsePacket>;
    try {
      p = parsePacket(msg);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      count(err.reason);
      if (err.answer !== null) {
        stats.requests++;
        stats.failed++;
        main.send(encodeError(err.answer, err.message), rinfo.port, rinfo.address);
      }
      log.debug({ client: rinfo.address, port: rinfo.port, reason: err.reason }, 'tftp datagram dropped');
      return;
    }
    if (p.op !== 'rrq' && p.op !== 'wrq') {
      count('not_a_request');
      return;
    }
    stats.requests++;
    if (p.op === 'wrq') {
      refuse(rinfo, p.file, ErrorCode.ACCESS_VIOLATION, 'writes are not allowed', 'write_refused');
      return;
    }
    const key = `${rinfo.address}:${rinfo.port}`;
    if (active.has(key)) {
      count('duplicate_request');
      return;
    }
    const mine = perClient.get(rinfo.address) ?? 0;
    if (stats.active >= maxTransfers || mine >= maxPerClient) {
      count(stats.active >= maxTransfers ? 'busy' : 'client_busy');
      log.debug({ client: rinfo.address, port: rinfo.port, file: p.file }, 'tftp request over the limit');
      return;
    }
    active.set(key, null);
    perClient.set(rinfo.address, mine + 1);
    stats.active++;
    const job = serve(p, rinfo, key).catch((err) => {
      log.error({ err, client: rinfo.address, file: p.file }, 'tftp request failed');
    });
    pending.add(job);
    void job.finally(() => pending.delete(job));
  }

  const main = createSocket({ type: family });
  main.on('message', (msg, rinfo) => {
    try {
      onRequest(msg, rinfo);
    } catch (err) {
      count('internal');
      log.error({ err, client: rinfo.address }, 'tftp request handling failed');
    }
  });
  await new Promise<void>((resolve, reject) => {
    main.once('error', (err) => {
      main.close();
      reject(err);
    });
    main.bind({ address, port: opts.port }, () => {
      main.removeAllListeners('error');
      resolve();
    });
  });
  main.on('error', (err) => log.error({ err }, 'tftp server socket error'));
  const port = main.address().port;
  log.info({ address, port, root }, 'tftp server listening');

  return {
    port,
    stats,
    async stop() {
      if (stopping) return;
      stopping = true;
      main.close();
      const transfers = [...active.values()];
      for (const t of transfers) t?.finish(false, 'server stopped', 'stopped');
      await Promise.allSettled([...pending, ...transfers.map((t) => t?.closed)]);
      log.info({ port }, 'tftp server stopped');
    },
  };
}
