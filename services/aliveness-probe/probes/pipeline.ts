import { isIPv4 } from 'node:net';
import { type IcmpOptions, icmpStability, icmpSweep, type StabilityOptions } from './icmp.js';
import { sshProbe } from './ssh.js';

/** One node as the prober sees it. */
export interface ProbeTarget {
  nodeId: number;
  /** Admin-network addresses (no prefix length). */
  addresses: string[];
  hostKey: string | null;
  /** A dead node: its ICMP stage is the stricter recovery check (see icmpStability). */
  recovering?: boolean;
  /** False: SSH passed recently and the node is alive, so ICMP alone decides this time. Default true. */
  sshDue?: boolean;
}

export interface ProbeOutcome {
  nodeId: number;
  /** Null: the node could not be probed (no admin address or no pinned key); no sample for hysteresis. */
  ok: boolean | null;
  stage: 'icmp' | 'ssh' | 'none';
  reason: string;
  address: string | null;
  durationMs: number;
  /** True when an SSH login passed in this probe. */
  ssh?: boolean;
}

export interface PipelineOptions {
  icmp: IcmpOptions;
  /** Recovery check for dead nodes; null uses the plain sweep for them too. */
  stability: StabilityOptions | null;
  /** Null disables the SSH stage (no cluster key configured): ping alone decides. */
  ssh: { privateKey: string; port: number; timeoutMs: number; concurrency: number } | null;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** IPv4 first: with dual-stack admin networks it is the address operators look for in the health view. */
const order = (a: string, b: string) => Number(isIPv4(b)) - Number(isIPv4(a)) || a.localeCompare(b);

/**
 * The probe the original ran after every job, for many nodes at once: one ICMP sweep over every admin
 * address, then an SSH login (pinned host key, `echo alive`) on the first answering address of each node.
 */
export async function probeNodes(targets: ProbeTarget[], o: PipelineOptions): Promise<ProbeOutcome[]> {
  const started = performance.now();
  const skipped = (t: ProbeTarget, reason: string): ProbeOutcome => ({
    nodeId: t.nodeId,
    ok: null,
    stage: 'none',
    reason,
    address: null,
    durationMs: 0,
  });
  const probeable = targets.filter((t) => t.addresses.length > 0 && (t.hostKey || !o.ssh));
  const strict = (t: ProbeTarget) => t.recovering === true && o.stability !== null;
  // Both fping processes run side by side: one sweep for most nodes, one recovery check for dead ones.
  const [plain, stable] = await Promise.all([
    icmpSweep(
      probeable.filter((t) => !strict(t)).flatMap((t) => t.addresses),
      o.icmp,
    ),
    o.stability
      ? icmpStability(
          probeable.filter(strict).flatMap((t) => t.addresses),
          o.stability,
        )
      : new Map(),
  ]);
  const icmpDone = performance.now() - started;
  const outcomes = await pool(targets, o.ssh?.concurrency ?? 1, async (t): Promise<ProbeOutcome> => {
    if (t.addresses.length === 0) return skipped(t, 'not probed: no admin address');
    if (o.ssh && !t.hostKey) return skipped(t, 'not probed: no pinned host key');
    const addrs = [...t.addresses].sort(order);
    const echo = strict(t) ? stable : plain;
    const answering = addrs.filter((a) => echo.get(a)?.alive);
    const first = answering[0];
    if (first === undefined) {
      const reason = echo.get(addrs[0] as string)?.reason ?? 'icmp timeout';
      return {
        nodeId: t.nodeId,
        ok: false,
        stage: 'icmp',
        reason,
        address: addrs[0] ?? null,
        durationMs: icmpDone,
      };
    }
    if (!o.ssh || t.sshDue === false) {
      return {
        nodeId: t.nodeId,
        ok: true,
        stage: 'none',
        reason: 'ok',
        address: first,
        durationMs: icmpDone,
      };
    }
    // "On one of its admin-network addresses": try each answering one; report the preferred one's failure.
    const s0 = performance.now();
    let failure: { reason: string; address: string } | null = null;
    for (const address of answering) {
      const r = await sshProbe({
        host: address,
        port: o.ssh.port,
        hostKey: t.hostKey as string,
        privateKey: o.ssh.privateKey,
        timeoutMs: o.ssh.timeoutMs,
      });
      const durationMs = icmpDone + (performance.now() - s0);
      if (r.ok)
        return { nodeId: t.nodeId, ok: true, stage: 'none', reason: 'ok', address, durationMs, ssh: true };
      failure ??= { reason: r.reason, address };
    }
    return {
      nodeId: t.nodeId,
      ok: false,
      stage: 'ssh',
      reason: failure?.reason ?? 'ssh error',
      address: failure?.address ?? first,
      durationMs: icmpDone + (performance.now() - s0),
    };
  });
  return outcomes;
}
