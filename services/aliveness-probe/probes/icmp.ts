import { spawn } from 'node:child_process';
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
  const child = spawn(o.fpingPath ?? 'fping', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    // Only the tail matters for diagnostics; per-target errors are short lines.
    stderr = (stderr + d).slice(-1_000_000);
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${targets.join('\n')}\n`);
  const bound = sweepBoundMs(targets.length, o);
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), bound);
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
    throw new IcmpSweepError(
      `fping failed (exit ${code ?? 'killed'}): ${stderr.trim().split('\n').slice(-3).join('; ')}`,
    );
  }
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
