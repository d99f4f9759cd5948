import { fileURLToPath } from 'node:url';
import { type Run, runNode } from './process.js';

const bin = fileURLToPath(new URL('../../infra/cli/crowbar.mjs', import.meta.url));

/** Runs the real `crowbar` binary (never blocking the event loop: in-process servers keep answering). */
export function runCrowbar(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
): Promise<Run> {
  return runNode([bin, ...args], env, timeoutMs);
}
