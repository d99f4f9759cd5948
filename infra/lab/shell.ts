import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** A command of the lab's that failed: its argv and what it said. */
export class LabCommandError extends Error {
  override name = 'LabCommandError';
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')} failed (${code ?? 'killed'}): ${stderr.trim().slice(0, 500)}`);
  }
}

/**
 * Runs a command without blocking the event loop (in-process services keep answering meanwhile);
 * resolves with its stdout, rejects with a LabCommandError. Bounded by `timeoutMs`.
 */
export function run(argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const p = spawn(cmd as string, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    p.stderr?.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-4000);
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    p.once('error', (e) => {
      clearTimeout(timer);
      reject(new LabCommandError(argv, null, e.message));
    });
    p.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new LabCommandError(argv, code, err));
    });
    if (p.stdin) {
      // A command that exits without reading its input is reported by its exit status, not EPIPE.
      p.stdin.on('error', () => undefined);
      p.stdin.end(opts.input);
    }
  });
}

/** Like run, but a failure is only returned (for cleanup: the thing may be gone already). */
export const tryRun = (argv: string[], opts: { timeoutMs?: number } = {}) =>
  run(argv, opts).then(
    () => null,
    (e: unknown) => e as Error,
  );

/** A process's start time in clock ticks, so a reused PID is not mistaken for the owner. */
export function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** `<pid>:<start time>` of a process, or null when it does not run. */
export const processId = (pid: number) => {
  const t = startTime(pid);
  return t === null ? null : `${pid}:${t}`;
};

/** True when the process `<pid>:<start time>` still runs (and is the same process). */
export function stillRuns(id: string | undefined | null): boolean {
  const m = /^(\d+):(\d+)$/.exec(id ?? '');
  return m !== null && startTime(Number(m[1])) === m[2];
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The children of a process (from /proc), e.g. the PID 1 of the namespace an `unshare` made. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
