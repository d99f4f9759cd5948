import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

export interface ServiceProcess {
  pid: number;
  /** Log lines the service printed (JSON), newest last. */
  lines: string[];
  /** The last 4 KB it wrote to stderr. */
  stderr(): string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

/**
 * Runs one service as its own process, as the launcher does, and resolves once it logged
 * "service started". The caller stops it (tests register `stop` in afterAll).
 */
export async function spawnService(
  name: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ServiceProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', `${root}services/${name}/index.ts`],
    {
      cwd: root,
      env: { ...process.env, ...env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  let buf = '';
  child.stdout?.on('data', (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
    if (lines.length > 5000) lines.splice(0, lines.length - 5000);
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const handle: ServiceProcess = {
    pid: child.pid ?? -1,
    lines,
    stderr: () => stderr,
    exited,
    kill: (signal = 'SIGKILL') => {
      if (!gone) child.kill(signal);
    },
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  const end = Date.now() + timeoutMs;
  while (!lines.some((l) => l.includes('"service started"'))) {
    if (gone) throw new Error(`${name} exited during start: ${stderr.trim()}`);
    if (Date.now() > end) {
      await handle.stop();
      throw new Error(`${name} did not start within ${timeoutMs} ms: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return handle;
}
