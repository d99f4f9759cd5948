import { execFileSync, spawn } from 'node:child_process';
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

/**
 * Stops the process named by the first line of a pid file (when it still runs and belongs to the pid
 * file's directory: a reused PID is someone else's), SIGTERM then SIGKILL after 20 s.
 */
export async function stopByPidFile(file: string, log: (line: string) => void): Promise<void> {
  const pid = Number(readText(file).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 1) return;
  const id = processId(pid);
  const cmdline = readText(`/proc/${pid}/cmdline`);
  const environ = readText(`/proc/${pid}/environ`);
  if (!id || !(cmdline + environ).includes(file.slice(0, file.lastIndexOf('/')))) return;
  log(`stopping process ${pid} left by a killed lab (${file})`);
  killPid(pid, 'SIGTERM');
  for (let i = 0; i < 200 && stillRuns(id); i++) await new Promise((r) => setTimeout(r, 100));
  killPid(pid);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** PIDs holding a tap open, from `ip tuntap show` ("Attached to processes:qemu-system-x86(123)"). */
export function tapHolders(tap: string): number[] {
  try {
    const line = execFileSync('ip', ['tuntap', 'show'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    })
      .split('\n')
      .find((l) => l.startsWith(`${tap}:`));
    return [...(line ?? '').matchAll(/\((\d+)\)/g)].map((m) => Number(m[1]));
  } catch {
    return [];
  }
}
