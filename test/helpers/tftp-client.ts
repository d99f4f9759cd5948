import { createSocket, type Socket } from 'node:dgram';
import { encodeAck, encodeRequest, parsePacket } from '../../services/provisioner/tftp/packet.js';

/**
 * A TFTP client for tests where no real one can: RFC 1350 with options and RFC 7440 windows, with loss
 * and duplicate ACKs on demand, and one that never answers.
 */

export interface Fetch {
  data: Buffer;
  error: { code: number; message: string } | null;
  oack: Record<string, string> | null;
  /** Wire block numbers of DATA packets, in arrival order, duplicates included. */
  blocks: number[];
}

export interface FetchOptions {
  mode?: string;
  options?: [string, string | number][];
  /** Sent as the request instead of one built from the arguments. */
  raw?: Buffer;
  /** Pretend the nth DATA packet (counted from 0) never arrived. */
  lose?: (n: number) => boolean;
  duplicateAcks?: boolean;
  /** Resend the last ACK after this much silence (RFC 7440 receivers do). */
  idleMs?: number;
}

export async function bound(address = '127.0.0.1'): Promise<Socket> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, address, r));
  return sock;
}

export async function fetchTftp(file: string, port: number, o: FetchOptions = {}): Promise<Fetch> {
  const sock = await bound();
  const out: Fetch = { data: Buffer.alloc(0), error: null, oack: null, blocks: [] };
  const parts: Buffer[] = [];
  let blksize = 512;
  let windowsize = 1;
  let good = 0; // last in-order block, unwrapped
  let inWindow = 0;
  let lastAck: Buffer | null = null;
  let dallying = false;
  let tid = 0;
  let n = 0;
  const request = o.raw ?? encodeRequest('rrq', file, o.mode ?? 'octet', o.options ?? []);
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`fetch ${file}: no end within 60 s`)), 60_000);
      const end = () => {
        clearTimeout(deadline);
        clearInterval(idle);
        resolve();
      };
      let heard = Date.now();
      /** `then` runs once the datagram is out (closing the socket before that would lose it). */
      const ack = (block: number, then?: () => void) => {
        lastAck = encodeAck(block);
        if (o.duplicateAcks) sock.send(lastAck, tid, '127.0.0.1');
        sock.send(lastAck, tid, '127.0.0.1', then);
      };
      const idle = setInterval(() => {
        if (Date.now() - heard < (o.idleMs ?? 300)) return;
        heard = Date.now();
        if (lastAck && tid) sock.send(lastAck, tid);
      }, 20);
      sock.on('message', (m, rinfo) => {
        if (tid === 0) tid = rinfo.port;
        if (rinfo.port !== tid) return;
        heard = Date.now();
        const p = parsePacket(m);
        if (p.op === 'error') {
          out.error = { code: p.code, message: p.message };
          end();
        } else if (p.op === 'oack') {
          if (out.oack) return;
          out.oack = Object.fromEntries(p.options);
          blksize = Number(out.oack.blksize ?? 512);
          windowsize = Number(out.oack.windowsize ?? 1);
          ack(0);
        } else if (p.op === 'data') {
          if (dallying) {
            if (lastAck) sock.send(lastAck, tid, '127.0.0.1');
            return;
          }
          if (o.lose?.(n++)) return;
          out.blocks.push(p.block);
          if (p.block !== ((good + 1) & 0xffff)) {
            // Out of order or a duplicate: tell the server where we are (once per gap).
            if (inWindow !== -1) ack(good);
            inWindow = -1;
            return;
          }
          good++;
          parts.push(Buffer.from(p.data));
          inWindow = inWindow === -1 ? 1 : inWindow + 1;
          // RFC 1350 §6: the receiver of the last block dallies, re-ACKing a resent block, so a
          // retransmission racing its final ACK is not answered by a closed port.
          if (p.data.length < blksize)
            ack(good, () => {
              dallying = true;
              setTimeout(end, 250);
            });
          else if (inWindow >= windowsize) {
            ack(good);
            inWindow = 0;
          }
        }
      });
      sock.send(request, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
  out.data = Buffer.concat(parts);
  return out;
}

/** Sends `request` and collects what comes back for `ms`, never answering. */
export async function silent(port: number, request: Buffer, ms: number, address = '127.0.0.1', times = 1) {
  const sock = await bound(address);
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  for (let i = 0; i < times; i++) sock.send(request, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, ms));
  sock.close();
  return got;
}
