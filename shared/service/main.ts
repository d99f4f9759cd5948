import { ConfigError } from '../config.js';
import { hostService, type ServiceDef } from './host.js';

/** The parts of `process` a service entry point needs; passed in so only index.ts touches the process. */
export interface ProcessLike {
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadableStream;
  on(event: 'SIGINT' | 'SIGTERM', cb: () => void): unknown;
  exit(code: number): never;
}

/**
 * Runs a service until SIGINT/SIGTERM (or, under the launcher, until the launcher's pipe closes, so a
 * killed launcher leaves no orphans). A bad config exits 2 with one message naming every variable.
 */
export async function runMain(def: ServiceDef, proc: ProcessLike): Promise<void> {
  let hosted: Awaited<ReturnType<typeof hostService>>;
  try {
    hosted = await hostService(def, { env: proc.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${def.name}: ${err.message}`);
      proc.exit(2);
    }
    console.error(`${def.name}: failed to start: ${describe(err)}`);
    proc.exit(1);
  }
  const shutdown = (reason: string) => {
    void hosted.stop(reason).then(() => proc.exit(0));
    setTimeout(() => proc.exit(1), 10_000).unref();
  };
  proc.on('SIGINT', () => shutdown('SIGINT'));
  proc.on('SIGTERM', () => shutdown('SIGTERM'));
  if (proc.env.CROWBAR_PARENT_PIPE === '1') {
    proc.stdin.on('end', () => shutdown('launcher went away'));
    proc.stdin.resume();
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message.split('\n')[0]}${cause}`;
}
