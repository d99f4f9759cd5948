import cliProgress from 'cli-progress';
import { CliError, type Client, exitCodes } from './client.js';
import { readEvents } from './sse.js';

interface Noderole {
  id: number;
  node: string;
  role: string;
  deployment: string;
  deploymentId: number;
  state: string;
  runlog?: string;
}

export interface ConvergeResult {
  status: 'converged' | 'failed' | 'blocked' | 'timeout';
  counts: Record<string, number>;
  failed: { id: number; node: string; role: string; deployment: string; runlog: string }[];
  blocked: number;
}

export interface ConvergeOptions {
  deployment?: string | undefined;
  /** 0: wait as long as it takes. */
  timeoutMs: number;
  /** Where progress goes (stderr); a TTY gets a bar, anything else one line per change. */
  progress: NodeJS.WritableStream & { isTTY?: boolean };
  /** Lines of each failed noderole's run log to show. */
  tailLines: number;
  /** How often the noderoles are read again, in case an event was lost (the events only wake us up). */
  resyncMs?: number;
}

const moving = ['todo', 'transition'];
const order = ['active', 'transition', 'todo', 'blocked', 'error'];

/**
 * `crowbar converge [deployment]`: waits until nothing is TODO or TRANSITION in committed deployments
 * (the anneal of reference §3.9, for one deployment or all), showing noderoles per state as they change.
 * The noderole events (`GET /api/v2/events?filter=noderole.*`) drive the display; the noderole list is
 * the truth, read at the start, when the events say it is done, and every `resyncMs`.
 */
export async function converge(client: Client, opts: ConvergeOptions): Promise<ConvergeResult> {
  const stop = new AbortController();
  const deadline = opts.timeoutMs > 0 ? Date.now() + opts.timeoutMs : Number.POSITIVE_INFINITY;
  const dep = opts.deployment;
  const depId = dep && /^\d+$/.test(dep) ? Number(dep) : undefined;
  const ours = (n: { deployment: string; deploymentId: number }) =>
    dep === undefined || n.deployment === dep || n.deploymentId === depId;
  if (dep !== undefined) await client.call('GET', `/deployments/${encodeURIComponent(dep)}`);

  const states = new Map<number, Noderole>();
  let committed: Set<number> | undefined;
  const read = async () => {
    const q = dep === undefined ? '' : `?deployment=${encodeURIComponent(dep)}`;
    const [{ noderoles }, { deployments }] = await Promise.all([
      client.call<{ noderoles: Noderole[] }>('GET', `/node_roles${q}`),
      client.call<{ deployments: { id: number; state: string }[] }>('GET', '/deployments'),
    ]);
    committed = new Set(deployments.filter((d) => d.state === 'committed').map((d) => d.id));
    states.clear();
    for (const n of noderoles) states.set(n.id, n);
  };
  const counts = () => {
    const c: Record<string, number> = {};
    for (const n of states.values()) {
      if (n.state === 'proposed' || !committed?.has(n.deploymentId)) continue;
      c[n.state] = (c[n.state] ?? 0) + 1;
    }
    return c;
  };
  const settled = (c: Record<string, number>) => moving.every((s) => !c[s]);

  const bar = opts.progress.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: opts.progress,
          format: 'noderoles [{bar}] {value}/{total} settled | {states}',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let lastLine = '';
  const show = () => {
    const c = counts();
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    const done = (c.active ?? 0) + (c.error ?? 0) + (c.blocked ?? 0);
    const text = order.map((s) => `${s} ${c[s] ?? 0}`).join(', ');
    if (bar) {
      if (!bar.isActive) bar.start(total, done, { states: text });
      bar.setTotal(total);
      bar.update(done, { states: text });
    } else {
      const line = `noderoles: ${done}/${total} settled (${text})`;
      if (line !== lastLine) opts.progress.write(`${line}\n`);
      lastLine = line;
    }
  };

  // Subscribe first, read after: whatever changes after the read arrives as an event.
  let wake: () => void = () => undefined;
  let connected!: () => void;
  const ready = new Promise<void>((r) => {
    connected = r;
  });
  let streamError: unknown;
  const pump = (async () => {
    try {
      for await (const e of readEvents(client, {
        filter: 'noderole.*',
        signal: stop.signal,
        onConnected: () => connected(),
      })) {
        const env = JSON.parse(e.data) as { type: string; data: { noderole?: Noderole } };
        const nr = env.data.noderole;
        if (!nr || !ours(nr)) continue;
        if (env.type.startsWith('noderole.deleted.')) states.delete(nr.id);
        else states.set(nr.id, { ...states.get(nr.id), ...nr });
        wake();
      }
    } catch (err) {
      streamError = err;
    } finally {
      connected();
      wake();
    }
  })();

  try {
    // A gateway that does not open the stream within 10 s: go on reading the noderoles on the resync timer.
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise<void>((r) => (waited = setTimeout(r, 10_000)))]);
    clearTimeout(waited);
    if (streamError instanceof CliError) throw streamError;
    await read();
    show();
    let lastRead = Date.now();
    for (;;) {
      const c = counts();
      if (settled(c)) {
        // The events say done: check against the noderoles themselves before believing it.
        await read();
        lastRead = Date.now();
        show();
        if (settled(counts())) break;
      }
      const now = Date.now();
      if (now >= deadline) break;
      const resync = opts.resyncMs ?? 5_000;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, Math.min(deadline, lastRead + resync) - now));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = () => undefined;
      if (Date.now() - lastRead >= resync) {
        await read();
        lastRead = Date.now();
      }
      show();
    }
  } finally {
    bar?.stop();
    stop.abort();
    await pump;
  }

  const c = counts();
  const failedRows = [...states.values()].filter(
    (n) => n.state === 'error' && committed?.has(n.deploymentId),
  );
  const failed = failedRows.map((n) => ({
    id: n.id,
    node: n.node,
    role: n.role,
    deployment: n.deployment,
    runlog: tail(n.runlog ?? '', opts.tailLines),
  }));
  const status = !settled(c) ? 'timeout' : failed.length ? 'failed' : c.blocked ? 'blocked' : 'converged';
  return { status, counts: c, failed, blocked: c.blocked ?? 0 };
}

/** The last `n` lines of a run log. */
export function tail(log: string, n: number): string {
  const lines = log.replace(/\n+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

export const convergeExit = (r: ConvergeResult) =>
  r.status === 'converged' ? exitCodes.ok : r.status === 'timeout' ? exitCodes.timeout : exitCodes.failed;
