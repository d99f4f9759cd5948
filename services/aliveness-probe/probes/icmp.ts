import { spawn, spawnSync } from 'node:child_process';
import { isIP } from 'node:net';
import { ValidationError } from '../../../shared/errors.js';

export interface IcmpOptions {
  /** Wait for the first reply this long (fping -t); retries back off by 1.5x. */
  timeoutMs: number;
  /** Extra echo requests to a silent target (fping -r). */
  retries: number;
  /** Pause between sends to different targets, ms (fping -i); 0 sends as fast as the kernel takes them. */
  intervalMs: number;
  fpingPath?: string;
}

export interface IcmpResult {
  alive: boolean;
  rttMs: number | null;
  /** Why not alive: `icmp timeout`, or fping's per-target error (e.g. no route). */
  reason: string;
}

export class IcmpSweepError extends Error {
  override readonly name = 'IcmpSweepError';
}

/** Fails at start, in one sentence, when fping cannot run; returns its version line otherwise. */
export function checkFping(path = 'fping'): string {
  const r = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status !== 0)
    throw new IcmpSweepError(
      `${path} cannot run (${r.error?.message ?? `exit ${r.status}`}): install Debian's fping`,
    );
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
}

/** Upper bound on one sweep: every retry's timeout with backoff, every send interval, plus slack. */
export function sweepBoundMs(count: number, o: IcmpOptions): number {
  let perTarget = 0;
  for (let i = 0, t = o.timeoutMs; i <= o.retries; i++, t *= 1.5) perTarget += t;
  return Math.ceil(perTarget + count * (o.intervalMs + 1) * (o.retries + 1) + 5000);
}

const lineRe = /^(\S+) is (alive|unreachable)(?: \((\d+(?:\.\d+)?) ms\))?/;
const errRe = /^(\S+): (.+)$/;

/**
 * Sends ICMP echo to many addresses with ONE fping process (no process per ping): targets go in on stdin,
 * one verdict per target comes back on stdout. IPv4 and IPv6 mix freely. Only IP literals are accepted,
 * so fping never resolves names and no target can look like an option.
 */
export async function icmpSweep(
  addresses: readonly string[],
  o: IcmpOptions,
): Promise<Map<string, IcmpResult>> {
  const out = new Map<string, IcmpResult>();
  const wanted = new Set(addresses);
  const targets = [...wanted];
  for (const a of targets) {
    if (!isIP(a)) throw new ValidationError(`not an IP address: ${JSON.stringify(a)}`, { field: 'address' });
  }
  if (targets.length === 0) return out;
  const args = [
    '-e',
    `-t${Math.max(1, Math.round(o.timeoutMs))}`,
    `-r${o.retries}`,
    `-i${Math.max(0, Math.round(o.intervalMs))}`,
    '-B1.5',
    '-f',
    '-',
  ];
  const { stdout, stderr } = await runFping(
    o.fpingPath ?? 'fping',
    args,
    targets,
    sweepBoundMs(targets.length, o),
  );
  for (const line of stdout.split('\n')) {
    const m = lineRe.exec(line);
    if (!m) continue;
    const [, addr, state, rtt] = m as unknown as [string, string, string, string | undefined];
    out.set(addr, {
      alive: state === 'alive',
      rttMs: rtt === undefined ? null : Number(rtt),
      reason: state === 'alive' ? 'ok' : 'icmp timeout',
    });
  }
  for (const line of stderr.split('\n')) {
    const m = errRe.exec(line);
    if (!m) continue;
    const [, addr, msg] = m as unknown as [string, string, string];
    const prev = out.get(addr);
    if (wanted.has(addr) && !prev?.alive)
      out.set(addr, {
        alive: false,
        rttMs: null,
        reason: `icmp unreachable (${msg.replace(/^error while sending ping: /, '')})`,
      });
  }
  for (const a of targets) if (!out.has(a)) out.set(a, { alive: false, rttMs: null, reason: 'icmp timeout' });
  return out;
}

/** Runs one fping over `targets` (fed on stdin), bounded in time; exit codes 0-2 are answers, not errors. */
async function runFping(
  path: string,
  args: string[],
  targets: string[],
  boundMs: number,
): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(path, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${targets.join('\n')}\n`);
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new IcmpSweepError(`cannot run fping: ${err.message}`, { cause: err }));
    });
    child.once('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  // fping: 0 all alive, 1 some unreachable, 2 some address errors; anything else is fping failing.
  if (code === null || code > 2) {
    const tail = stderr.trim().split('\n').slice(-3).join('; ');
    throw new IcmpSweepError(`fping failed (exit ${code ?? 'killed'}): ${tail}`);
  }
  return { stdout, stderr };
}

export interface StabilityOptions {
  /** Echo requests per target; all must be answered. */
  count: number;
  /** Spacing between them (fping -p), so the check spans (count - 1) x period. */
  periodMs: number;
  timeoutMs: number;
  fpingPath?: string;
}

const summaryRe = /^(\S+)\s+: xmt\/rcv\/%loss = (\d+)\/(\d+)/;

/**
 * The recovery check for a dead node: several echo requests spread over time, one fping process for all
 * targets, passing only if every one is answered. A link that flaps faster than the span never passes,
 * so a flapping node stays dead instead of churning (one passed probe still revives a node that is
 * simply back).
 */
export async function icmpStability(
  addresses: readonly string[],
  o: StabilityOptions,
): Promise<Map<string, IcmpResult>> {
  const out = new Map<string, IcmpResult>();
  const targets = [...new Set(addresses)];
  for (const a of targets) {
    if (!isIP(a)) throw new ValidationError(`not an IP address: ${JSON.stringify(a)}`, { field: 'address' });
  }
  if (targets.length === 0) return out;
  const args = [
    '-q',
    `-c${o.count}`,
    `-p${Math.max(20, o.periodMs)}`,
    `-t${Math.max(1, o.timeoutMs)}`,
    '-f',
    '-',
  ];
  const bound = o.count * o.periodMs + o.timeoutMs + targets.length * 2 + 5000;
  const { stderr } = await runFping(o.fpingPath ?? 'fping', args, targets, bound);
  for (const line of stderr.split('\n')) {
    const m = summaryRe.exec(line);
    if (!m) continue;
    const [, addr, xmt, rcv] = m as unknown as [string, string, string, string];
    const all = Number(rcv) === Number(xmt) && Number(xmt) > 0;
    out.set(addr, {
      alive: all,
      rttMs: null,
      reason: all ? 'ok' : Number(rcv) === 0 ? 'icmp timeout' : `icmp unstable (${rcv}/${xmt} replies)`,
    });
  }
  for (const a of targets) if (!out.has(a)) out.set(a, { alive: false, rttMs: null, reason: 'icmp timeout' });
  return out;
}
