// Builds the native addons (today: dhcp-db's UDP socket) with node-gyp when the built .node is missing or
// older than its sources. Plain JavaScript: it runs from bootstrap.mjs before tsx exists, and by hand as
// `node infra/native.mjs`. node-gyp ships with npm, so nothing is downloaded when npm's copy is found and
// the Node headers are installed (nodedir); a failure ends in one sentence saying what to install.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  realpathSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const addons = [
  {
    name: 'dhcp-db socket',
    dir: 'services/dhcp-db/server/native',
    output: 'build/Release/dhcp_socket.node',
    sources: ['binding.gyp', 'dhcp_socket.c'],
  },
];

const toolchainHint = 'apt-get install g++ make python3';

/** Builds what is stale; returns when all addons are fresh, exits the process (status 1) otherwise. */
export function ensureNativeAddons(root, log) {
  const stale = addons.filter((a) => !isFresh(root, a));
  if (stale.length === 0) return;
  const stateDir = join(root, '.state');
  const lock = join(stateDir, 'native-build.lock');
  const logFile = join(stateDir, 'native-build.log');
  let problem = null;
  try {
    mkdirSync(stateDir, { recursive: true });
    if (!acquire(lock)) {
      log(
        `another process has held ${lock} for minutes while building native addons: remove it if none is running, and run again.`,
      );
      process.exit(1);
    }
    try {
      writeFileSync(logFile, '');
      for (const a of stale) {
        if (isFresh(root, a)) continue; // built by another process while we waited for the lock
        log(`building the ${a.name} native addon (node-gyp) …`);
        const why = build(join(root, a.dir), logFile);
        if (why) {
          problem = `building the ${a.name} native addon failed (${why}; full output in ${logFile})`;
          break;
        }
      }
    } finally {
      rmdirSync(lock);
    }
  } catch (err) {
    problem = `building the native addons failed (${err instanceof Error ? err.message : err})`;
  }
  if (problem) {
    log(`${problem}: install a C toolchain and Python (e.g. \`${toolchainHint}\`) and run again.`);
    process.exit(1);
  }
}

function isFresh(root, a) {
  const out = join(root, a.dir, a.output);
  if (!existsSync(out)) return false;
  const built = statSync(out).mtimeMs;
  return a.sources.every((s) => statSync(join(root, a.dir, s)).mtimeMs <= built);
}

// Parallel `npm test` / `npm start` must not run node-gyp in the same directory at once; mkdir is atomic.
function acquire(lock) {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      return true;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    try {
      // A builder that died leaves its lock behind; a build takes seconds.
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmdirSync(lock);
    } catch {
      // released meanwhile
    }
    if (Date.now() > deadline) return false;
    Atomics.wait(sleeper, 0, 0, 200);
  }
}

/** Runs node-gyp rebuild in dir; returns null on success, else a short reason. */
function build(dir, logFile) {
  const missing = ['g++', 'make'].filter((p) => !onPath(p));
  if (!onPath('python3') && !onPath('python')) missing.push('python3');
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  const args = ['rebuild', `--directory=${dir}`];
  const nodedir = headersDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const gyp = nodeGyp();
  const [cmd, argv] = gyp
    ? [process.execPath, [gyp, ...args]]
    : ['npm', ['exec', '--yes', '--package=node-gyp', '--', 'node-gyp', ...args]];
  appendFileSync(logFile, `$ ${cmd} ${argv.join(' ')}\n`);
  const r = spawnSync(cmd, argv, {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  appendFileSync(logFile, `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error}\n` : ''}`);
  if (r.status === 0) return null;
  if (!gyp && r.status !== 0 && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|E404/.test(r.stderr ?? ''))
    return 'node-gyp was not found and could not be fetched: install npm, which ships it';
  const lines = `${r.stdout}\n${r.stderr}`.split('\n');
  const firstError =
    lines.find((l) => /\berror:/i.test(l)) ?? lines.find((l) => /\berror\b/i.test(l) && !/^gyp /.test(l));
  return firstError
    ? `first error: ${firstError.trim().slice(0, 200)}`
    : `node-gyp exited with ${r.status ?? r.signal}`;
}

function onPath(program) {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, program)));
}

function npmOutput(args) {
  const r = spawnSync('npm', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 30_000,
  });
  const out = r.status === 0 ? r.stdout.trim() : '';
  return out && out !== 'undefined' && out !== 'null' ? out : null;
}

/** node-gyp.js from npm's own bundle, looked for where npm is installed; null: use `npm exec`. */
function nodeGyp() {
  const inNpm = (npmDir) => join(npmDir, 'node_modules/node-gyp/bin/node-gyp.js');
  const candidates = [
    () => process.env.npm_config_node_gyp, // set by npm for the scripts it runs
    () => process.env.npm_execpath && inNpm(join(dirname(process.env.npm_execpath), '..')),
    () => {
      // npm on PATH is usually a symlink to <npm>/bin/npm-cli.js
      const dir = (process.env.PATH ?? '').split(delimiter).find((d) => d && existsSync(join(d, 'npm')));
      return dir && inNpm(join(dirname(realpathSync(join(dir, 'npm'))), '..'));
    },
    () => inNpm(join(dirname(process.execPath), '../lib/node_modules/npm')),
    () => {
      const prefix = npmOutput(['prefix', '-g']);
      return prefix && inNpm(join(prefix, 'lib/node_modules/npm'));
    },
    () => join(fileURLToPath(new URL('..', import.meta.url)), 'node_modules/node-gyp/bin/node-gyp.js'),
  ];
  for (const c of candidates) {
    try {
      const p = c();
      if (p && existsSync(p)) return p;
    } catch {
      // try the next place
    }
  }
  return null;
}

/** Where this Node's headers are installed (so node-gyp needs no download), or null. */
function headersDir() {
  const has = (d) =>
    d && existsSync(join(d, 'include/node/node_api.h')) && existsSync(join(d, 'include/node/common.gypi'));
  const configured = process.env.npm_config_nodedir || npmOutput(['config', 'get', 'nodedir']);
  if (has(configured)) return configured;
  const besideNode = join(dirname(process.execPath), '..');
  return has(besideNode) ? besideNode : null;
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureNativeAddons(fileURLToPath(new URL('..', import.meta.url)), (line) =>
    console.error(`[crowbar] ${line}`),
  );
}
