/**
 * `npm test`: typecheck, lint + format check, then the test suite against real PostgreSQL and NATS
 * (found or started by test/global-setup.ts). Stops at the first failing step.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => `${root}node_modules/.bin/${name}`;
const steps: [string, string, string[]][] = [
  ['typecheck', bin('tsc'), ['-p', '.']],
  ['typecheck the web UI', bin('tsc'), ['-p', 'services/gateway/ui']],
  ['lint and format', bin('biome'), ['check', '.']],
  ['tests', bin('vitest'), ['run', ...process.argv.slice(2)]],
];
for (const [label, cmd, args] of steps) {
  process.stdout.write(`\n== ${label} ==\n`);
  const t = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stdout.write(`\n${label} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status ?? 1);
  }
  process.stdout.write(`${label} ok in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
}
