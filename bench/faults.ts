/**
 * `npm run bench -- faults [--rounds 2] [--only <file part>]`
 *
 * The reliability plan's faults as a report: every `test/faults-*.test.ts` (runner SIGSTOP and keep-alive,
 * annealer and prober locks, kill -9 at the outbox's publish points, nats-server kill -9, PostgreSQL
 * `-m immediate`, a three-node NATS cluster losing two nodes in turn) run `--rounds` times, one file at a
 * time, against the machine's PostgreSQL and NATS as `npm test` uses them. Per fault: runs, survived (the
 * test passed: every invariant held), lost and duplicated. The anneal faults print their own counts (writes
 * answered 2xx but missing; destructive runs twice); for the others a passing run is 0 and 0 by the test's
 * assertions and a failing run counts as lost, since its outcome is unknown.
 * Ends with `{"bench":"faults","ours":<survived>,"baseline":<runs>,"ratio":…,"lost":…,"duplicated":…}`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: { rounds: { type: 'string', default: '2' }, only: { type: 'string' } },
});
const rounds = Math.max(1, Math.min(20, Number(opts.rounds) || 2));
const files = readdirSync(`${root}test`)
  .filter((f) => /^faults-.*\.test\.ts$/.test(f) && (!opts.only || f.includes(opts.only)))
  .sort();
if (files.length === 0) {
  console.error(`no fault tests match --only ${opts.only}`);
  process.exit(2);
}

interface Row {
  fault: string;
  runs: number;
  survived: number;
  lost: number;
  duplicated: number;
  seconds: number;
}
const rows = new Map<string, Row>();
const row = (fault: string) => {
  const r = rows.get(fault) ?? { fault, runs: 0, survived: 0, lost: 0, duplicated: 0, seconds: 0 };
  rows.set(fault, r);
  return r;
};

for (let round = 1; round <= rounds; round++) {
  for (const file of files) {
    const started = Date.now();
    const r = spawnSync(`${root}node_modules/.bin/vitest`, ['run', `test/${file}`], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 15 * 60_000,
    });
    const seconds = (Date.now() - started) / 1000;
    const passed = r.status === 0;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: vitest colours its output
    const out = (r.stdout ?? '').replace(/\x1b\[[0-9;]*m/g, '');
    const reports = [...out.matchAll(/^FAULT (\{.*\})\s*$/gm)].map(
      (m) => JSON.parse(m[1]!) as { fault: string; lost: number; duplicated: number },
    );
    if (reports.length) {
      for (const rep of reports) {
        const x = row(rep.fault);
        x.runs++;
        x.survived += passed ? 1 : 0;
        x.lost += rep.lost;
        x.duplicated += rep.duplicated;
        x.seconds += seconds;
      }
    } else {
      const x = row(file.replace(/^faults-|\.test\.ts$/g, ''));
      x.runs++;
      x.seconds += seconds;
      if (passed) x.survived++;
      else x.lost++;
    }
    console.log(`round ${round}: ${file} ${passed ? 'passed' : 'FAILED'} in ${seconds.toFixed(1)} s`);
    if (!passed)
      console.log(
        (r.stdout ?? '')
          .split('\n')
          .filter((l) => /Error|expected|FAIL/.test(l))
          .slice(0, 8)
          .join('\n'),
      );
  }
}

const all = [...rows.values()];
const w = Math.max(5, ...all.map((r) => r.fault.length));
console.log(`\n${'fault'.padEnd(w)}  runs  survived  lost  duplicated  s/run`);
for (const r of all)
  console.log(
    `${r.fault.padEnd(w)}  ${String(r.runs).padStart(4)}  ${String(r.survived).padStart(8)}  ${String(r.lost).padStart(4)}  ${String(r.duplicated).padStart(10)}  ${(r.seconds / r.runs).toFixed(1).padStart(5)}`,
  );
const sum = (k: 'runs' | 'survived' | 'lost' | 'duplicated') => all.reduce((a, r) => a + r[k], 0);
console.log(
  JSON.stringify({
    bench: 'faults',
    ours: sum('survived'),
    baseline: sum('runs'),
    ratio: Number((sum('survived') / sum('runs')).toFixed(3)),
    lost: sum('lost'),
    duplicated: sum('duplicated'),
  }),
);
