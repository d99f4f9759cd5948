/**
 * `npm run bench -- lab --nodes 50`: seconds from power-on to every lightweight lab node discovered
 * (registered, committed by the lab's --auto-commit through the API, its discovery roles ACTIVE over
 * SSH), memory per node (PSS of every process in the node's namespaces), and the load average beside it:
 * an absolute time on this machine, not a ratio. Runs `npm run lab` itself in a state dir of its own.
 * Goal: < 180 s for 50 nodes on the 2-core development machine. Needs root.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);
const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '50' },
    timeout: { type: 'string', default: '600' },
    goal: { type: 'string', default: '180' },
  },
});
const nodes = Number(values.nodes);
const goal = Number(values.goal);
const stateDir = mkdtempSync(join(tmpdir(), 'crowbar-lab-bench-'));
const loadBefore = loadavg().map((l) => Math.round(l * 100) / 100);

const result = await new Promise<Record<string, unknown> | null>((resolve) => {
  const p = spawn(
    process.execPath,
    [
      join(root, 'infra/bootstrap.mjs'),
      'lab.ts',
      '--nodes',
      String(nodes),
      '--until',
      'discovered',
      '--auto-commit',
      '--timeout',
      values.timeout,
      '--name',
      'bench',
      '--state-dir',
      stateDir,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let found: Record<string, unknown> | null = null;
  let buf = '';
  p.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('[lab]')) say(line);
      const m = /^\[lab\] result (\{.*\})$/.exec(line);
      if (m) found = JSON.parse(m[1]!) as Record<string, unknown>;
    }
  });
  p.once('exit', () => resolve(found));
});
rmSync(stateDir, { recursive: true, force: true });
if (!result) {
  say(JSON.stringify({ bench: 'lab', nodes, seconds: null, error: 'not every node was discovered' }));
  process.exit(1);
}
const seconds = Number(result.seconds);
say(
  JSON.stringify({
    bench: 'lab',
    nodes,
    seconds,
    memory_per_node_mb: result.memoryPerNodeMb,
    load_before: loadBefore,
    load: result.load,
    goal_seconds: goal,
    ours: seconds,
    baseline: goal,
    ratio: Math.round((goal / seconds) * 100) / 100,
  }),
);
