/**
 * A TFTP transfer thread: the server's main thread takes requests, checks paths, opens the file and
 * agrees options, then hands each transfer here. This thread opens the file again through the server's
 * descriptor (`/proc/self/fd/<n>`: the same file, whatever its name points to by now), binds the
 * transfer's own socket, connects it to the client and moves the blocks (`Transfer`), so transfers
 * spread over the machine's cores instead of queueing behind one thread's `sendmsg` calls.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import type { Negotiated, TftpRequest } from './packet.js';
import { transferSocket } from './socket.js';
import { type TftpTransfer, Transfer } from './transfer.js';

/** What the main thread sends: a transfer to start, or to end. */
export type ToWorker =
  | {
      type: 'start';
      id: number;
      /**
       * The file the server opened and checked, as `/proc/self/fd/<n>` of its descriptor: opened again
       * here, it is the same file whatever happened to its name since (the server's descriptor stays
       * open until the transfer ends).
       */
      fdPath: string;
      size: number;
      request: TftpRequest;
      client: RemoteInfo;
      negotiated: Negotiated;
      address: string;
      family: 'udp4' | 'udp6';
      timeoutMs: number;
      retries: number;
      started: number;
    }
  | { type: 'stop'; id: number };

/** What comes back: the transfer ended (or its socket could not be made: `socketError`). */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; id: number; transfer: TftpTransfer; reason: string | null }
  | { type: 'socket_failed'; id: number; error: string };

const port = parentPort;
if (!port) throw new Error('transfer-worker.ts runs as a worker thread of the TFTP server');
const post = (m: FromWorker) => port.postMessage(m);
const running = new Map<number, Transfer>();
/** Ends asked for before the transfer's socket was ready. */
const stopped = new Set<number>();

async function start(m: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  let sock: Socket;
  let handle: FileHandle;
  try {
    handle = await open(m.fdPath, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    post({ type: 'socket_failed', id: m.id, error: `file not reopened: ${(err as Error).message}` });
    return;
  }
  try {
    sock = await transferSocket(m.address, m.family, m.client);
    if (stopped.delete(m.id)) {
      sock.close();
      throw new Error('server stopped');
    }
  } catch (err) {
    await handle.close().catch(() => undefined);
    post({ type: 'socket_failed', id: m.id, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  const t = new Transfer({
    sock,
    handle,
    size: m.size,
    request: m.request,
    client: m.client,
    negotiated: m.negotiated,
    timeoutMs: m.timeoutMs,
    retries: m.retries,
    started: m.started,
    done: (transfer, reason) => {
      running.delete(m.id);
      // Reported once the file is closed, so a stopping server waits for every file.
      void t.closed.then(() => post({ type: 'done', id: m.id, transfer, reason }));
    },
  });
  if (!t.finished) running.set(m.id, t);
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') void start(m);
  else {
    const t = running.get(m.id);
    if (t) t.finish(false, 'server stopped', 'stopped');
    else stopped.add(m.id);
  }
});
post({ type: 'ready' });
