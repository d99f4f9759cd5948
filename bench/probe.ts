/**
 * `npm run bench -- probe [--targets N] [--rounds R] [--timeout MS] [--retries K] [--interval MS] [--ssh N]`
 *
 * Sweep rate (targets/s) of the aliveness probe's ICMP stage next to plain `fping`, in the same run, over
 * N loopback addresses (127.0.0.0/8, default 1,000), all of which answer:
 * - ours: `icmpSweep()` as the service calls it: targets validated, fed to one fping process on stdin,
 *   its output parsed into a verdict per address (no process per ping);
 * - baseline: `fping -a` with the same timeout, retries and send interval, targets on the command line,
 *   counting the addresses it prints as alive.
 * Rounds alternate (baseline, ours, ...) so background load hits both; the best round of each side is
 * reported. Every address must be found alive by both: a miss is a false down.
 * With `--ssh N` it also times the whole pipeline (ICMP + SSH login with the pinned key + `echo alive`)
 * for N nodes against one real sshd on loopback (printed only; the JSON line compares the ICMP stage).
 */
import { execFile } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { icmpSweep } from '../services/aliveness-probe/probes/icmp.js';
import { probeNodes } from '../services/aliveness-probe/probes/pipeline.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { ensureFping, ensureSshd, startSshd } from '../test/helpers/sshd.js';

// Installed as the tests do (root), or one sentence naming the package to install.
ensureFping();
ensureSshd();
const run = promisify(execFile);
const { values: opts } = parseArgs({
  options: {
    targets: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '5' },
    timeout: { type: 'string', default: '500' },
    retries: { type: 'string', default: '1' },
    interval: { type: 'string', default: '0' },
    ssh: { type: 'string', default: '0' },
  },
});
const count = Number(opts.targets);
const rounds = Number(opts.rounds);
const icmp = {
  timeoutMs: Number(opts.timeout),
  retries: Number(opts.retries),
  intervalMs: Number(opts.interval),
};
if (!Number.isInteger(count) || count < 1 || count > 60_000) throw new Error('--targets must be 1..60000');
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds must be 1..50');

// 127.1.0.1, 127.1.0.2, ... skipping .0 and .255 so no address looks like a network or broadcast.
const targets: string[] = [];
for (let i = 0; targets.length < count; i++) {
  const host = (i % 254) + 1;
  const net = Math.floor(i / 254);
  targets.push(`127.${1 + Math.floor(net / 256)}.${net % 256}.${host}`);
}

async function baseline(): Promise<{ ms: number; down: number }> {
  const t0 = performance.now();
  const r = await run(
    'fping',
    ['-a', `-t${icmp.timeoutMs}`, `-r${icmp.retries}`, `-i${icmp.intervalMs}`, ...targets],
    { maxBuffer: 64 * 1024 * 1024 },
  ).catch((err: { stdout?: string; code?: number }) => {
    // Exit 1 means some target did not answer; the output still counts.
    if (err.code === 1 && typeof err.stdout === 'string') return { stdout: err.stdout };
    throw err;
  });
  const ms = performance.now() - t0;
  const alive = new Set(r.stdout.split('\n').filter(Boolean));
  return { ms, down: targets.filter((t) => !alive.has(t)).length };
}

async function ours(): Promise<{ ms: number; down: number }> {
  const t0 = performance.now();
  const r = await icmpSweep(targets, icmp);
  const ms = performance.now() - t0;
  return { ms, down: targets.filter((t) => !r.get(t)?.alive).length };
}

const best = { ours: Number.POSITIVE_INFINITY, baseline: Number.POSITIVE_INFINITY };
let falseDown = 0;
let baselineDown = 0;
for (let i = 0; i < rounds; i++) {
  const b = await baseline();
  const o = await ours();
  best.baseline = Math.min(best.baseline, b.ms);
  best.ours = Math.min(best.ours, o.ms);
  falseDown += o.down;
  baselineDown += b.down;
  console.log(
    `round ${i + 1}: fping ${b.ms.toFixed(1)} ms (${b.down} down), ours ${o.ms.toFixed(1)} ms (${o.down} down)`,
  );
}
const sshNodes = Number(opts.ssh);
if (sshNodes > 0) {
  const cluster = generateKeyPair('bench');
  const sshd = await startSshd({ authorizedKeys: [cluster.publicKey] });
  try {
    const list = Array.from({ length: sshNodes }, (_, i) => ({
      nodeId: i + 1,
      addresses: ['127.0.0.1'],
      hostKey: sshd.hostKey,
    }));
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const outs = await probeNodes(list, {
      icmp,
      stability: null,
      ssh: { privateKey: cluster.privateKey, port: sshd.port, timeoutMs: 20_000, concurrency: 32 },
    });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuPerNode = (cpu.user + cpu.system) / 1000 / sshNodes;
    const failed = outs.filter((o) => !o.ok);
    console.log(
      `full pipeline, ${sshNodes} nodes on one loopback sshd (32 logins at once): ${ms.toFixed(0)} ms, ` +
        `${Math.round((sshNodes / ms) * 1000)} nodes/s, prober CPU ${cpuPerNode.toFixed(1)} ms/node, ${failed.length} failed${failed[0] ? ` (${failed[0].reason})` : ''}`,
    );
  } finally {
    await sshd.cleanup();
  }
}
const rate = (ms: number) => Math.round((count / ms) * 1000);
console.log(
  `${count} loopback targets, timeout ${icmp.timeoutMs} ms, retries ${icmp.retries}, interval ${icmp.intervalMs} ms; ` +
    `best sweep: ours ${best.ours.toFixed(1)} ms, fping ${best.baseline.toFixed(1)} ms; fping's own misses: ${baselineDown}`,
);
console.log(
  JSON.stringify({
    bench: 'probe',
    ours: rate(best.ours),
    baseline: rate(best.baseline),
    ratio: Number((rate(best.ours) / rate(best.baseline)).toFixed(3)),
    false_down: falseDown,
  }),
);
