import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildSync } from 'esbuild';
import type { Logger } from '../../../shared/log.js';
import type { TftpTransfer } from './transfer.js';
import type { FromWorker, ToWorker } from './transfer-worker.js';

type Start = Omit<Extract<ToWorker, { type: 'start' }>, 'type' | 'id' | 'fdPath'> & { handle: FileHandle };

/** A transfer under way, wherever it runs: ended by `finish`, `closed` once its file is. */
export interface ActiveTransfer {
  finish(ok: false, error: string, reason: string): void;
  closed: Promise<void>;
}

interface Job {
  worker: number;
  start: Start;
  done: (t: TftpTransfer, reason: string | null) => void;
  failed: (error: string) => void;
  settle: () => void;
}

let workerSource: string | undefined;

/**
 * The thread's program: `transfer-worker.ts` and what it imports (node builtins aside) as one CommonJS
 * script, built once per process. A worker thread does not reliably inherit the TypeScript loader the
 * services run under (Node 20 with tsx hooks in the main thread loads none in the worker), so the thread
 * is given plain JavaScript instead.
 */
export function threadProgram(): string {
  workerSource ??= buildSync({
    entryPoints: [fileURLToPath(new URL('./transfer-worker.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  }).outputFiles[0]!.text;
  return workerSource;
}

/** Resolves once the thread's module loaded and listens (`online` comes before that). */
function ready(w: Worker): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      w.off('message', onMessage).off('error', settle).off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onMessage = (m: FromWorker) =>
      settle(m.type === 'ready' ? undefined : new Error(`${m.type} before ready`));
    const onExit = (code: number) => settle(new Error(`exited with code ${code}`));
    w.on('message', onMessage).on('error', settle).on('exit', onExit);
  });
}

/**
 * The TFTP server's transfer threads: each transfer runs on the least busy one, which opens the file
 * again through the server's checked descriptor. A thread that dies fails its transfers (the clients ask again) and takes no more.
 */
export class TransferThreads {
  readonly #workers: (Worker | null)[];
  readonly #load: number[];
  readonly #jobs = new Map<number, Job>();
  #next = 1;

  private constructor(
    workers: Worker[],
    private readonly log: Logger,
  ) {
    this.#workers = workers;
    this.#load = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.on('message', (m: FromWorker) => this.#onMessage(m));
      w.on('error', (err) => this.#lost(i, err));
      w.on('exit', (code) => this.#lost(i, new Error(`exited with code ${code}`)));
    });
  }

  /**
   * `n` threads, started and answering; null (logged) when they cannot be, so transfers stay in-thread.
   * `program` is the threads' JavaScript (threadProgram(), the transfer worker, unless given).
   */
  static async start(n: number, log: Logger, program?: string): Promise<TransferThreads | null> {
    if (n <= 0) return null;
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const w = new Worker(program ?? threadProgram(), { eval: true, execArgv: [] });
        workers.push(w);
        await ready(w);
      }
      return new TransferThreads(workers, log);
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      log.warn({ err }, 'tftp transfer threads could not start: transfers run on the server thread');
      return null;
    }
  }

  get size(): number {
    return this.#workers.filter(Boolean).length;
  }

  /** Starts a transfer on the least busy thread; `done` or `failed` is called once. */
  run(
    start: Start,
    done: (t: TftpTransfer, reason: string | null) => void,
    failed: (error: string) => void,
  ): ActiveTransfer | null {
    const worker = this.#leastBusy();
    if (worker === null) return null;
    const id = this.#next++;
    let settle: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.#jobs.set(id, { worker, start, done, failed, settle });
    this.#load[worker]!++;
    const { handle, ...rest } = start;
    const message: ToWorker = { type: 'start', id, fdPath: `/proc/self/fd/${handle.fd}`, ...rest };
    this.#workers[worker]!.postMessage(message);
    return {
      closed,
      finish: () => this.#workers[worker]?.postMessage({ type: 'stop', id } satisfies ToWorker),
    };
  }

  async stop(): Promise<void> {
    const workers = this.#workers.filter((w): w is Worker => w !== null);
    this.#workers.fill(null);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  #leastBusy(): number | null {
    let best: number | null = null;
    for (const [i, w] of this.#workers.entries())
      if (w && (best === null || this.#load[i]! < this.#load[best]!)) best = i;
    return best;
  }

  #take(id: number): Job | undefined {
    const job = this.#jobs.get(id);
    if (!job) return undefined;
    this.#jobs.delete(id);
    this.#load[job.worker]!--;
    // The thread has its own descriptor of the file; this one was kept open until the transfer ended.
    void job.start.handle
      .close()
      .catch(() => undefined)
      .then(job.settle);
    return job;
  }

  #onMessage(m: FromWorker): void {
    if (m.type === 'ready') return;
    const job = this.#take(m.id);
    if (!job) return;
    if (m.type === 'done') job.done(m.transfer, m.reason);
    else job.failed(m.error);
  }

  /** A thread gone: its transfers fail as a dropped transfer does (the clients ask again). */
  #lost(i: number, err: Error): void {
    if (!this.#workers[i]) return;
    this.#workers[i] = null;
    this.log.error({ err, thread: i }, 'tftp transfer thread lost; its transfers failed');
    for (const [id, job] of [...this.#jobs]) {
      if (job.worker !== i) continue;
      this.#take(id);
      const { client, request, started } = job.start;
      job.done(
        {
          client: client.address,
          port: client.port,
          file: request.file,
          bytes: 0,
          ok: false,
          error: `transfer thread lost: ${err.message}`,
          ms: Date.now() - started,
          options: {},
        },
        'thread_lost',
      );
    }
  }
}
