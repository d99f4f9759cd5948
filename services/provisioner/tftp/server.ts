/**
 * The provisioner's TFTP server: read requests only, each transfer on its own ephemeral UDP socket
 * connected to the client (the kernel then keeps other peers out and reports an unreachable client).
 * Files are read in bounded chunks, never whole; a transfer keeps only its window's packets. DATA is sent
 * on start and on a new ACK, again only on timeout (never on a duplicate ACK: no sorcerer's apprentice),
 * and block numbers roll over from 65535 to 0 as tftp-hpa and iPXE expect.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from '../../../shared/log.js';
import { rateLimitedLog } from '../../../shared/rate-limited-log.js';
import {
  DATA_HEADER,
  ErrorCode,
  encodeError,
  encodeOack,
  type Negotiated,
  negotiate,
  Opcode,
  PacketError,
  parsePacket,
  type TftpRequest,
  toNetascii,
  writeDataHeader,
} from './packet.js';
import { bootRoot, openBootFile, PathError } from './paths.js';

export interface TftpTransfer {
  client: string;
  port: number;
  file: string;
  /** Payload bytes the client acknowledged. */
  bytes: number;
  ok: boolean;
  error: string | null;
  ms: number;
  /** What the OACK acknowledged (empty for a plain RFC 1350 transfer or a refused request). */
  options: Record<string, number>;
}

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

const CHUNK = 64 * 1024;

/**
 * Cuts a file into DATA packets, reading about CHUNK bytes at a time; netascii is converted on the way.
 * `take` is synchronous while a whole block (or the end of the file) is buffered, `fill` reads more.
 */
class BlockSource {
  private buf: Buffer;
  private at = 0;
  private end = 0;
  private pos = 0;
  private eof = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly netascii: boolean,
    private readonly blksize: number,
  ) {
    this.buf = Buffer.allocUnsafe(CHUNK + blksize);
  }

  ready(): boolean {
    return this.eof || this.end - this.at >= this.blksize;
  }

  /** The DATA packet of `block`: full, or short (maybe empty) for the last one. Only when ready(). */
  take(block: number): Buffer {
    const n = Math.min(this.blksize, this.end - this.at);
    const out = Buffer.allocUnsafe(DATA_HEADER + n);
    writeDataHeader(out, block & 0xffff);
    this.buf.copy(out, DATA_HEADER, this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** Reads up to the size found at open: a growing file does not make the transfer outlive its tsize. */
  async fill(): Promise<void> {
    const left = this.end - this.at;
    const want = Math.min(CHUNK, this.size - this.pos);
    if (want <= 0) {
      this.eof = true;
      return;
    }
    if (this.netascii) {
      const raw = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.handle.read(raw, 0, want, this.pos);
      this.pos += bytesRead;
      if (bytesRead === 0) this.eof = true;
      this.buf = Buffer.concat([
        this.buf.subarray(this.at, this.end),
        toNetascii(raw.subarray(0, bytesRead)),
      ]);
      this.at = 0;
      this.end = this.buf.length;
      return;
    }
    // Less than a block is left: move it to the front, read behind it.
    this.buf.copyWithin(0, this.at, this.end);
    const { bytesRead } = await this.handle.read(this.buf, left, want, this.pos);
    this.pos += bytesRead;
    if (bytesRead === 0) this.eof = true;
    this.at = 0;
    this.end = left + bytesRead;
  }
}

interface TransferContext {
  sock: Socket;
  handle: FileHandle;
  size: number;
  request: TftpRequest;
  client: RemoteInfo;
  negotiated: Negotiated;
  timeoutMs: number;
  retries: number;
  started: number;
  done: (t: TftpTransfer, reason: string | null) => void;
}

/**
 * One read transfer. Blocks are counted from 1 without wrapping (`acked`, `sent`); only the wire carries
 * them modulo 65536. With an OACK, its ACK 0 opens the first window.
 */
class Transfer {
  private readonly source: BlockSource;
  private readonly window: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly blksize: number;
  private readonly windowsize: number;
  private oack: Buffer | null;
  private acked = 0;
  private sent = 0;
  private last: number | null = null;
  private bytes = 0;
  private tries = 0;
  private reading = false;
  private resentAt = -1;
  finished = false;
  /** Settles when the file is closed. */
  closed: Promise<void> = Promise.resolve();

  constructor(private readonly c: TransferContext) {
    const { negotiated, request } = c;
    this.blksize = negotiated.blksize;
    this.windowsize = negotiated.windowsize;
    this.source = new BlockSource(c.handle, c.size, request.mode === 'netascii', this.blksize);
    this.oack = negotiated.acked.length > 0 ? encodeOack(negotiated.acked) : null;
    c.sock.on('message', (m) => this.onPacket(m));
    c.sock.on('error', (e) => this.onError(e));
    this.timer = setTimeout(() => this.onTimeout(), c.timeoutMs);
    if (this.oack) c.sock.send(this.oack);
    else this.pump();
  }

  private onPacket(m: Buffer): void {
    if (this.finished || m.length < 4 || m[0] !== 0) return;
    if (m[1] === Opcode.ACK) this.onAck(m.readUInt16BE(2));
    else if (m[1] === Opcode.ERROR) {
      const p = parsePacket(m);
      if (p.op === 'error')
        this.finish(false, `client error ${p.code}: ${p.message.slice(0, 100)}`, 'client_error');
    }
  }

  private onAck(wire: number): void {
    if (this.oack) {
      if (wire !== 0) return;
      this.oack = null;
      this.progress();
      this.pump();
      return;
    }
    // The block this ACK names, at or after the last one acked; anything not sent yet or acked before is
    // a duplicate or stale and changes nothing.
    const block = this.acked + ((wire - this.acked) & 0xffff);
    if (block === this.acked && this.windowsize > 1 && this.window.length > 0 && this.resentAt !== block) {
      // RFC 7440: a receiver that lost the window's first block ACKs the previous window again. Answered
      // once per window, so duplicates cannot multiply.
      this.resentAt = block;
      for (const w of this.window) this.c.sock.send(w);
      return;
    }
    if (block === this.acked || block > this.sent) return;
    for (let i = block - this.acked; i > 0; i--) this.bytes += this.window.shift()!.length - DATA_HEADER;
    this.acked = block;
    this.progress();
    if (block === this.last) {
      this.finish(true, null, null);
      return;
    }
    // RFC 7440: an ACK inside the window means the client lost the rest: send it again from there.
    for (const w of this.window) this.c.sock.send(w);
    this.pump();
  }

  /** ICMP unreachable comes back as an error on the connected socket: the client is gone. */
  private onError(e: Error): void {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
      this.finish(false, `client unreachable (${code})`, 'unreachable');
    // Anything else (ENOBUFS, say) is a lost datagram: the retransmission timer covers it.
  }

  private progress(): void {
    this.tries = 0;
    this.timer.refresh();
  }

  /** Sends while the window has room; when a block is not buffered yet, reads and comes back. */
  private pump(): void {
    while (
      !this.finished &&
      !this.oack &&
      this.sent - this.acked < this.windowsize &&
      (this.last === null || this.sent < this.last)
    ) {
      if (!this.source.ready()) {
        if (!this.reading) {
          this.reading = true;
          this.source.fill().then(
            () => {
              this.reading = false;
              this.pump();
            },
            (cause: Error) => {
              if (this.finished) return; // the file was closed under a read by stop()
              this.c.sock.send(encodeError(ErrorCode.NOT_DEFINED, 'read error'));
              this.finish(false, `read error: ${cause.message}`, 'read_error');
            },
          );
        }
        return;
      }
      const block = this.sent + 1;
      const packet = this.source.take(block);
      if (packet.length - DATA_HEADER < this.blksize) this.last = block;
      this.window.push(packet);
      this.sent = block;
      this.c.sock.send(packet);
    }
  }

  private onTimeout(): void {
    if (this.finished) return;
    if (++this.tries > this.c.retries) {
      this.finish(false, `no ACK after ${this.c.retries} retransmissions`, 'timeout');
      return;
    }
    if (this.oack) this.c.sock.send(this.oack);
    else for (const w of this.window) this.c.sock.send(w);
    this.timer.refresh();
  }

  /** Ends the transfer once; `reason` labels a failure in the stats. */
  finish(ok: boolean, error: string | null, reason: string | null): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.window.length = 0;
    try {
      this.c.sock.close();
    } catch {
      // already closed
    }
    this.closed = this.c.handle.close().catch(() => undefined);
    const { client, request, negotiated, started } = this.c;
    this.c.done(
      {
        client: client.address,
        port: client.port,
        file: request.file,
        bytes: this.bytes,
        ok,
        error,
        ms: Date.now() - started,
        options: Object.fromEntries(negotiated.acked),
      },
      reason,
    );
  }
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
