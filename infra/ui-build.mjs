// Builds the web UI (services/gateway/ui, Vite) when its build is missing or stale. Plain JavaScript so
// infra/bootstrap.mjs can call it before TypeScript is loaded; test/global-setup.ts calls it too.
// The build lives outside git, in node_modules/.cache/crowbar-ui/dist, with a stamp: a hash of the UI's
// sources and of the versions of the packages it bundles. A changed input rebuilds it.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

const bundled = ['vite', 'react', 'react-dom', '@tanstack/react-query', '@dagrejs/dagre'];

/** Where the gateway finds the build (also its CROWBAR_UI_DIR default). */
export const uiDist = (root) => join(root, 'node_modules/.cache/crowbar-ui/dist');

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

/** The hash of everything the build depends on. */
export function uiInputsHash(root) {
  const h = createHash('sha256');
  const src = join(root, 'services/gateway/ui');
  for (const f of files(src)) h.update(f.slice(src.length)).update('\0').update(readFileSync(f)).update('\0');
  for (const p of bundled) {
    const pkg = join(root, 'node_modules', p, 'package.json');
    h.update(`${p}@${existsSync(pkg) ? JSON.parse(readFileSync(pkg, 'utf8')).version : 'missing'}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

/** Builds the UI unless the build on disk matches its inputs; returns the directory to serve. */
export async function ensureUiBuild(root, log = () => {}) {
  const dist = uiDist(root);
  const stampFile = join(dist, '.stamp');
  const hash = uiInputsHash(root);
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === hash) return dist;
  const started = Date.now();
  log(`building the web UI (${hash}) …`);
  const tmp = `${dist}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const { build } = await import('vite');
  await build({
    configFile: join(root, 'services/gateway/ui/vite.config.ts'),
    root: join(root, 'services/gateway/ui'),
    logLevel: 'warn',
    build: { outDir: tmp, emptyOutDir: true },
  });
  writeFileSync(join(tmp, '.stamp'), `${hash}\n`);
  mkdirSync(join(dist, '..'), { recursive: true });
  // Another process may have built it meanwhile: the last one in wins, the inputs were the same.
  rmSync(dist, { recursive: true, force: true });
  try {
    renameSync(tmp, dist);
  } catch (err) {
    if (!existsSync(stampFile)) throw err;
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`web UI built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return dist;
}

// `node infra/ui-build.mjs`: build now (used by `npm run ui:build`).
if (import.meta.url === `file://${process.argv[1]}`) {
  const root = new URL('..', import.meta.url).pathname;
  console.log(await ensureUiBuild(root, (l) => console.error(`[crowbar] ${l}`)));
}
