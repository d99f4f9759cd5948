import type { Bus } from '../../shared/bus/bus.js';
import { inventoryRpcs, type ProbeRecord } from '../../shared/catalogue/index.js';
import type { Clock } from '../../shared/clock.js';
import type { Database } from '../../shared/db/database.js';
import { type Faults, noFaults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import { reportFor } from './domain/hysteresis.js';
import { type PipelineOptions, type ProbeOutcome, probeNodes } from './probes/pipeline.js';
import { reasonPrefix } from './projection.js';
import type { ProjectedNode, Store } from './store.js';

export interface ProberOptions {
  intervalMs: number;
  /** SSH an alive node every this many sweeps (1: every sweep); ICMP runs every sweep regardless. */
  sshEvery: number;
  failuresToDead: number;
  historyKeep: number;
  pipeline: PipelineOptions;
  /**
   * How long the sweep lock outlives a leader that stopped answering (SIGSTOP, a frozen VM): its lock
   * connection is ended by PostgreSQL after this much silence (`idle_session_timeout`); a running
   * leader keeps it busy three times as often.
   */
  leaderTimeoutMs: number;
  faults?: Faults;
}

export interface Prober {
  /** Probes one node now (on-demand RPC); the result also feeds its hysteresis. */
  probeOne(node: ProjectedNode): Promise<ProbeOutcome & { verdict: ProjectedNode['verdict'] }>;
  stats: { sweeps: number; lastSweepMs: number; reports: number; reportFailures: number; leader: boolean };
  stop(): Promise<void>;
}

const leaderKey = 'crowbar-aliveness-probe-sweeper';

/**
 * The periodic sweep: only one instance sweeps at a time (a PostgreSQL advisory lock held for the life
 * of a connection), every node is probed each interval, each result steps that node's hysteresis, and a
 * decided verdict that disagrees with inventory is reported through `node.set_alive`.
 */
export function startProber(deps: {
  bus: Bus;
  store: Store;
  database: Database;
  log: Logger;
  clock: Clock;
  options: ProberOptions;
}): Prober {
  const { bus, store, log, clock, options } = deps;
  const faults = options.faults ?? noFaults;
  const stats = { sweeps: 0, lastSweepMs: 0, reports: 0, reportFailures: 0, leader: false };
  let stopped = false;
  let wake: (() => void) | null = null;

  const reporting = (n: ProjectedNode) => n.available && !n.system;

  const report = async (node: ProjectedNode, alive: boolean, reason: string) => {
    try {
      const r = await bus.request(
        inventoryRpcs.setAlive,
        { node: node.id, alive, reason: `${reasonPrefix}${reason}`.slice(0, 500) },
        { timeoutMs: 5000 },
      );
      stats.reports++;
      await store.setProjectedAlive(node.id, r.node.alive);
      log.info(
        { node: node.id, name: node.name, alive, reason, changed: r.changed },
        'aliveness reported to inventory',
      );
    } catch (err) {
      // Level-triggered: the next sweep sees the same disagreement and tries again.
      stats.reportFailures++;
      log.warn(
        { node: node.id, alive, reason, err: (err as Error).message },
        'aliveness report failed; will retry',
      );
    }
  };

  const handle = async (o: ProbeOutcome, trigger: ProbeRecord['trigger']) => {
    const now = clock.now();
    const applied = await store.applyOutcome(o, {
      trigger,
      now,
      failuresToDead: options.failuresToDead,
      reporting,
    });
    if (!applied) return null;
    const { node, from, state, changed } = applied;
    if (changed) {
      log.info(
        {
          node: node.id,
          name: node.name,
          from,
          to: state.verdict,
          reason: state.reason,
          failures: state.failures,
          trigger,
          reporting: reporting(node),
        },
        'probe verdict changed',
      );
    }
    const want = reportFor({ ...node, verdict: state.verdict, now });
    if (want !== null) await report(node, want, state.reason);
    return state;
  };

  // Sweep number of each node's last passed SSH login. In memory: a new sweeping instance simply logs
  // in to everything on its first sweep.
  const lastSsh = new Map<number, number>();
  const sshDue = (n: ProjectedNode) =>
    options.sshEvery <= 1 ||
    n.verdict !== 'alive' ||
    stats.sweeps - (lastSsh.get(n.id) ?? Number.NEGATIVE_INFINITY) >= options.sshEvery;

  const sweep = async () => {
    await faults.at('prober-lock');
    const t0 = performance.now();
    // System nodes (phantoms and the admin node) are not machines the probe judges: nothing to probe.
    const list = (await store.listNodes()).filter((n) => !n.system);
    const due = new Map(list.map((n) => [n.id, sshDue(n)]));
    const targets = store.targets(list).map((t) => ({ ...t, sshDue: due.get(t.nodeId) ?? true }));
    const outcomes = await probeNodes(targets, options.pipeline);
    // A leader that was away (stopped) while another took over must not apply a sweep it began before.
    if (!(await stillLeading())) {
      log.warn({ nodes: outcomes.length }, 'sweep abandoned: this instance no longer holds the sweep lock');
      return;
    }
    for (const o of outcomes) if (o.ssh) lastSsh.set(o.nodeId, stats.sweeps);
    // A few at a time: each is one short transaction.
    for (let i = 0; i < outcomes.length; i += 8) {
      await Promise.all(outcomes.slice(i, i + 8).map((o) => handle(o, 'periodic')));
    }
    stats.sweeps++;
    stats.lastSweepMs = Math.round(performance.now() - t0);
    if (stats.sweeps % 20 === 0) await store.pruneHistory(options.historyKeep);
  };

  // On-demand probes arriving together (many runs ending at once) share one probe batch, so one fping
  // process serves them all rather than one per request.
  type Waiter = { node: ProjectedNode; resolve(o: ProbeOutcome): void; reject(e: unknown): void };
  let batch: Waiter[] = [];
  const flushBatch = () => {
    const waiters = batch;
    batch = [];
    probeNodes(store.targets(waiters.map((w) => w.node)), options.pipeline).then(
      (outs) => {
        for (const [i, w] of waiters.entries()) {
          const o = outs[i];
          if (o) w.resolve(o);
          else w.reject(new Error('probe produced no outcome'));
        }
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  };
  const onDemand = (node: ProjectedNode) =>
    new Promise<ProbeOutcome>((resolve, reject) => {
      if (batch.length === 0) setTimeout(flushBatch, 20);
      batch.push({ node, resolve, reject });
    });

  let lockClient: import('pg').PoolClient | null = null;
  /** The lock went with its session; `stats.leader` is put right (and logged) by the next check. */
  const dropLock = (err: unknown) => {
    if (stats.leader && lockClient)
      log.warn({ err: (err as Error).message }, 'sweep lock lost with its connection');
    lockClient?.release(true);
    lockClient = null;
  };
  const lockConnection = async () => {
    const c = await deps.database.pool.connect();
    c.on('error', () => undefined);
    // PostgreSQL ends this session (and so frees the lock) once it has been silent this long.
    await c
      .query(`set idle_session_timeout = ${Math.floor(options.leaderTimeoutMs)}`)
      .catch((err: unknown) =>
        log.warn(
          { err: (err as Error).message },
          'no idle_session_timeout (PostgreSQL < 14): a stopped leader keeps the lock',
        ),
      );
    return c;
  };
  /** True while the lock's session lives: a session lock is held exactly as long as its session. */
  const stillLeading = async () => {
    if (!lockClient || !stats.leader) return false;
    try {
      await lockClient.query('select 1');
      return true;
    } catch (err) {
      dropLock(err);
      return false;
    }
  };
  const heartbeat = setInterval(
    () => void stillLeading(),
    Math.max(100, Math.floor(options.leaderTimeoutMs / 3)),
  );
  const isLeader = async () => {
    try {
      lockClient ??= await lockConnection();
      const r = await lockClient.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
        leaderKey,
      ]);
      const ok = r.rows[0]?.ok === true;
      if (ok !== stats.leader)
        log.info({ leader: ok }, ok ? 'this instance sweeps' : 'another instance sweeps');
      stats.leader = ok;
      return ok;
    } catch (err) {
      dropLock(err);
      stats.leader = false;
      log.warn({ err: (err as Error).message }, 'cannot check sweep leadership');
      return false;
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      try {
        if (await isLeader()) await sweep();
      } catch (err) {
        log.warn({ err }, 'probe sweep failed');
      }
      const wait = Math.max(50, options.intervalMs - (performance.now() - started));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  })();

  return {
    stats,
    async probeOne(node) {
      const o = await onDemand(node);
      const state = await handle(o, 'on-demand');
      return { ...o, verdict: state?.verdict ?? node.verdict };
    },
    async stop() {
      stopped = true;
      clearInterval(heartbeat);
      wake?.();
      await loop;
      if (lockClient) {
        await lockClient.query('select pg_advisory_unlock_all()').catch(() => undefined);
        lockClient.release();
      }
    },
  };
}
