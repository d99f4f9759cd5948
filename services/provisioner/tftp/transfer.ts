/**
 * One TFTP read transfer on its own socket: the file read in bounded chunks (`BlockSource`), a window
 * of DATA packets kept until acknowledged, retransmission only on timeout (never on a duplicate ACK),
 * and block numbers rolling over from 65535 to 0 as tftp-hpa and iPXE expect. The server (`server.ts`)
 * accepts requests, negotiates options and opens the file; this file moves the blocks.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import type { FileHandle } from 'node:fs/promises';
import {
  DATA_HEADER,
  ErrorCode,
  encodeError,
  encodeOack,
  type Negotiated,
  Opcode,
  parsePacket,
  type TftpRequest,
  toNetascii,
  writeDataHeader,
} from './packet.js';

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

export interface TransferContext {
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
export class Transfer {
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
