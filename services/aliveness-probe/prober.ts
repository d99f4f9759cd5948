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
import { SweepLock } from './sweep-lock.js';

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

interface ProberDeps {
  bus: Bus;
  store: Store;
  database: Database;
  log: Logger;
  clock: Clock;
  options: ProberOptions;
}

export interface Prober {
  /** Probes one node now (on-demand RPC); the result also feeds its hysteresis. */
  probeOne(node: ProjectedNode): Promise<ProbeOutcome & { verdict: ProjectedNode['verdict'] }>;
  stats: { sweeps: number; lastSweepMs: number; reports: number; reportFailures: number; leader: boolean };
  stop(): Promise<void>;
}

/** A node whose verdict is reported to inventory: available machines, not phantoms or the admin node. */
const reporting = (n: ProjectedNode) => n.available && !n.system;

/**
 * On-demand probes arriving together (many runs ending at once) share one probe batch, so one fping
 * process serves them all rather than one per request.
 */
class OnDemandBatch {
  #waiting: { node: ProjectedNode; resolve(o: ProbeOutcome): void; reject(e: unknown): void }[] = [];

  constructor(
    private readonly store: Store,
    private readonly pipeline: PipelineOptions,
  ) {}

  probe(node: ProjectedNode): Promise<ProbeOutcome> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.length === 0) setTimeout(() => this.#flush(), 20);
      this.#waiting.push({ node, resolve, reject });
    });
  }

  #flush(): void {
    const waiters = this.#waiting;
    this.#waiting = [];
    probeNodes(this.store.targets(waiters.map((w) => w.node)), this.pipeline).then(
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
  }
}

/**
 * The periodic sweep: only one instance sweeps at a time (`SweepLock`), every node is probed each
 * interval, each result steps that node's hysteresis, and a decided verdict that disagrees with
 * inventory is reported through `node.set_alive`.
 */
class SweepingProber implements Prober {
  readonly stats = {
    sweeps: 0,
    lastSweepMs: 0,
    reports: 0,
    reportFailures: 0,
    leader: false,
    /** What the sweep loop is doing, and since when (health, and a stop that takes long). */
    phase: 'start',
    phaseSince: new Date().toISOString(),
  };
  readonly #faults: Faults;
  readonly #lock: SweepLock;
  readonly #onDemand: OnDemandBatch;
  /**
   * Sweep number of each node's last passed SSH login. In memory: a new sweeping instance simply logs
   * in to everything on its first sweep.
   */
  readonly #lastSsh = new Map<number, number>();
  #stopped = false;
  #wake: (() => void) | null = null;
  readonly #loop: Promise<void>;

  constructor(private readonly deps: ProberDeps) {
    this.#faults = deps.options.faults ?? noFaults;
    this.#lock = new SweepLock(deps.database, deps.log, deps.options.leaderTimeoutMs);
    this.#onDemand = new OnDemandBatch(deps.store, deps.options.pipeline);
    this.#loop = this.#run();
  }

  async probeOne(node: ProjectedNode) {
    const o = await this.#onDemand.probe(node);
    const state = await this.#apply(o, 'on-demand');
    return { ...o, verdict: state?.verdict ?? node.verdict };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    await this.#lock.release();
  }

  #enter(phase: string): void {
    this.stats.phase = phase;
    this.stats.phaseSince = new Date().toISOString();
  }

  async #run(): Promise<void> {
    const { log, options } = this.deps;
    while (!this.#stopped) {
      const started = performance.now();
      try {
        this.#enter('checking leadership');
        const leading = await this.#lock.tryTake();
        this.stats.leader = leading;
        if (leading) await this.#sweep();
      } catch (err) {
        log.warn({ err }, 'probe sweep failed');
      }
      // Stopped during the sweep: its wake-up came before there was a wait to end.
      if (this.#stopped) break;
      this.#enter('waiting');
      await this.#nap(Math.max(50, options.intervalMs - (performance.now() - started)));
    }
  }

  #nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    }).finally(() => {
      this.#wake = null;
    });
  }

  #sshDue(n: ProjectedNode): boolean {
    const every = this.deps.options.sshEvery;
    const last = this.#lastSsh.get(n.id) ?? Number.NEGATIVE_INFINITY;
    return every <= 1 || n.verdict !== 'alive' || this.stats.sweeps - last >= every;
  }

  async #sweep(): Promise<void> {
    const { store, log, options } = this.deps;
    await this.#faults.at('prober-lock');
    const t0 = performance.now();
    // System nodes (phantoms and the admin node) are not machines the probe judges: nothing to probe.
    this.#enter('listing nodes');
    const list = (await store.listNodes()).filter((n) => !n.system);
    const due = new Map(list.map((n) => [n.id, this.#sshDue(n)]));
    const targets = store.targets(list).map((t) => ({ ...t, sshDue: due.get(t.nodeId) ?? true }));
    this.#enter(`probing ${targets.length} nodes`);
    const outcomes = await probeNodes(targets, options.pipeline);
    this.#enter('checking the lock');
    // A leader that was away (stopped) while another took over must not apply a sweep it began before.
    if (!(await this.#lock.stillHeld())) {
      log.warn({ nodes: outcomes.length }, 'sweep abandoned: this instance no longer holds the sweep lock');
      return;
    }
    for (const o of outcomes) if (o.ssh) this.#lastSsh.set(o.nodeId, this.stats.sweeps);
    // A few at a time: each is one short transaction.
    this.#enter('applying outcomes');
    for (let i = 0; i < outcomes.length; i += 8) {
      await Promise.all(outcomes.slice(i, i + 8).map((o) => this.#apply(o, 'periodic')));
    }
    this.stats.sweeps++;
    this.stats.lastSweepMs = Math.round(performance.now() - t0);
    if (this.stats.sweeps % 20 === 0) await store.pruneHistory(options.historyKeep);
  }

  /** Steps the node's hysteresis with one outcome; reports a decided verdict inventory does not have. */
  async #apply(o: ProbeOutcome, trigger: ProbeRecord['trigger']) {
    const { store, log, clock, options } = this.deps;
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
    if (want !== null) await this.#report(node, want, state.reason);
    return state;
  }

  async #report(node: ProjectedNode, alive: boolean, reason: string): Promise<void> {
    const { bus, store, log } = this.deps;
    try {
      const r = await bus.request(
        inventoryRpcs.setAlive,
        { node: node.id, alive, reason: `${reasonPrefix}${reason}`.slice(0, 500) },
        { timeoutMs: 5000 },
      );
      this.stats.reports++;
      await store.setProjectedAlive(node.id, r.node.alive);
      log.info(
        { node: node.id, name: node.name, alive, reason, changed: r.changed },
        'aliveness reported to inventory',
      );
    } catch (err) {
      // Level-triggered: the next sweep sees the same disagreement and tries again.
      this.stats.reportFailures++;
      log.warn(
        { node: node.id, alive, reason, err: (err as Error).message },
        'aliveness report failed; will retry',
      );
    }
  }
}

export function startProber(deps: ProberDeps): Prober {
  return new SweepingProber(deps);
}
