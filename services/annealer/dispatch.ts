import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import { annealerMessages, type JigJob, jigJob } from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import type { OutboxEntry } from '../../shared/db/outbox.js';
import type { Faults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import type { InventoryClient } from './inventory.js';
import { type AnnealerOutbox, outboxEntry, writeWithEntries } from './outbox.js';
import type { Results } from './results.js';

export interface DispatchConfig {
  cap: number;
  highCap: number;
  graceSeconds: number;
  claimTimeoutSeconds: number;
  /** How long a pass waits for the cap lock before giving up until the next pass. */
  lockTimeoutMs: number;
  /** A claim transaction idle this long (its annealer stopped mid-way) is ended by PostgreSQL. */
  idleTxTimeoutMs: number;
}

/** Inventory names a role's jig as text; a job carries one the runners know. */
const jigKind = (jig: string): JigJob['jig'] => parsePayload(jigJob.shape.jig, jig, 'role jig');

/** Backoff of a dispatch retried with the same token. */
const retryDelayMs = (attempt: number) => Math.min(250 * 2 ** (attempt - 1), 4000);

/** The message id of a run's jig job: JetStream drops a second publish of it, dead-letter notices name it. */
export const jigJobId = (runId: number) => `jig:${runId}`;

/** The run a jig job's message id names, or null for any other message id. */
export function runOfJigJob(messageId: string | null): number | null {
  const m = /^jig:(\d+)$/.exec(messageId ?? '');
  return m ? Number(m[1]) : null;
}

interface DispatcherDeps {
  db: Db;
  bus: Bus;
  log: Logger;
  config: DispatchConfig;
  faults: Faults;
  inventory: InventoryClient;
  outbox: AnnealerOutbox;
  results: Pick<Results, 'report'>;
}

type Started = Awaited<ReturnType<InventoryClient['startRun']>>;

/**
 * Claim → start in inventory → job through the outbox. A pass claims what is runnable within the caps
 * (one run per node and per noderole by the database's unique indexes, the normal lane's cap under an
 * advisory lock, so several annealers can pass at once) and dispatches each claim without waiting.
 */
export class Dispatcher {
  #stopping = false;
  readonly #inFlight = new Set<Promise<void>>();
  /** Dispatch retries waiting out their backoff; stopping ends the waits at once. */
  readonly #waits = new Set<() => void>();
  /** The runs table's writes are grouped like inventory's starts: one statement (and one commit) per batch. */
  readonly #markRunning;

  constructor(private readonly deps: DispatcherDeps) {
    const { db, outbox } = deps;
    this.#markRunning = createBatcher({
      maxBatch: 128,
      maxInFlight: 2,
      // The job is committed with the run's `running` state: a crash between the two cannot strand a run.
      send: (rs: (store.Dispatched & { job: OutboxEntry })[]) =>
        writeWithEntries(db, outbox, rs, store.markRunning, (r) => r.job),
    });
  }

  /** One scheduling pass: claim, start and dispatch whatever is runnable within the caps. */
  async pass(): Promise<number> {
    const claims = [...(await this.#claimHigh()), ...(await this.#claimNormal())];
    // Dispatches go on without holding up the next pass: a slot freed meanwhile is filled at once.
    for (const c of claims) {
      const p: Promise<void> = this.#dispatchClaim(c).finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }
    return claims.length;
  }

  /** Resolves when every dispatch started so far has ended; with `stop`, retries give up at once. */
  async idle(stop = false): Promise<void> {
    if (stop) {
      this.#stopping = true;
      for (const done of [...this.#waits]) done();
    }
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  async #claimNormal(): Promise<store.RunRow[]> {
    const { db, config, faults, inventory } = this.deps;
    const busy = await store.inFlight(db);
    if (config.cap - busy.normal <= 0) return [];
    // Ask for a full cap's worth: runs that end while inventory answers leave more room by the time
    // the claims are made (the room is counted again under the lock below).
    const candidates = await inventory.runnable(Math.min(config.cap, 1000), busy.nodeIds);
    if (candidates.length === 0) return [];
    return db.transaction(async (tx) => {
      await store.lockCap(tx, config);
      await faults.at('annealer-cap-lock');
      const room = config.cap - (await store.normalInFlight(tx));
      const take = candidates.slice(0, Math.max(0, room));
      return take.length === 0 ? [] : store.insertClaims(tx, take);
    });
  }

  /** High lane: queued re-runs of ACTIVE noderoles whose node is free, up to `highCap` at once. */
  async #claimHigh(): Promise<store.RunRow[]> {
    const { db, config } = this.deps;
    const out: store.RunRow[] = [];
    for (const id of await store.claimableQueued(db, config.highCap)) {
      try {
        const run = await store.claimQueued(db, id);
        if (run) out.push(run);
      } catch {
        // Another process claimed a run on that node first (unique index); it waits for the next pass.
      }
    }
    return out;
  }

  /**
   * Dispatches a claim; if inventory does not answer (down, restarting), tries again with the same
   * token — a start is idempotent per token — while the claim is still ours and younger than the claim
   * timeout. After that, or when the annealer stops, the claim stays for the sweep to put back in line.
   */
  async #dispatchClaim(run: store.RunRow): Promise<void> {
    const { db, log, config } = this.deps;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#dispatch(run);
        return;
      } catch (err) {
        const age = Date.now() - new Date(run.createdAt).getTime();
        if (this.#stopping || age > config.claimTimeoutSeconds * 1000) {
          log.warn({ err, run: run.id, attempt }, 'dispatch failed; the sweep will requeue the claim');
          return;
        }
        log.warn({ err, run: run.id, attempt }, 'dispatch failed; trying again with the same token');
        await this.#pause(retryDelayMs(attempt));
        const state = await store.runState(db, run.id).catch(() => 'claimed');
        if (state !== 'claimed' || this.#stopping) return;
      }
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((res) => {
      const done = () => {
        clearTimeout(timer);
        this.#waits.delete(done);
        res();
      };
      const timer = setTimeout(done, ms);
      this.#waits.add(done);
    });
  }

  /** Starts the run in inventory, then sends its job (or reports it skipped, or drops the claim). */
  async #dispatch(run: store.RunRow): Promise<void> {
    const { db, log, inventory, results } = this.deps;
    const res = await inventory.startRun({
      noderoleId: run.noderoleId,
      token: run.token,
      rerun: run.lane === 'high',
    });
    if (!res.started || !res.role || !res.node) {
      await store.cancelClaim(db, run.id, res.reason);
      log.debug({ run: run.id, noderole: run.noderoleId, reason: res.reason }, 'claim dropped');
      return;
    }
    if (res.skipJig) {
      const why = res.skipReason ?? 'skipped: destructive role has already run on this node; jig skipped';
      log.info({ run: run.id, noderole: run.noderoleId, role: res.role.name, why }, 'jig skipped');
      await store.setRole(db, run.id, res.role);
      await results.report({ ...run, role: res.role.name }, { ok: true, wall: null, runlog: why }, 'skipped');
      return;
    }
    await this.#send(run, res.role, res.node, res.data ?? {});
  }

  /** Marks the run running and queues its jig job in the same transaction. */
  async #send(
    run: store.RunRow,
    role: NonNullable<Started['role']>,
    node: NonNullable<Started['node']>,
    data: NonNullable<Started['data']>,
  ): Promise<void> {
    const { bus, log, config } = this.deps;
    const job = outboxEntry(
      bus,
      annealerMessages.jigRun,
      {
        runId: run.id,
        token: run.token,
        noderoleId: run.noderoleId,
        role: role.name,
        jig: jigKind(role.jig),
        owner: role.owner,
        destructive: role.destructive,
        scripts: role.scripts,
        timeoutSeconds: role.timeoutSeconds,
        node,
        data,
      },
      jigJobId(run.id),
    );
    const moved = await this.#markRunning({
      id: run.id,
      role: role.name,
      jig: role.jig,
      destructive: role.destructive,
      data: JSON.stringify(data),
      deadlineSeconds: role.timeoutSeconds + config.graceSeconds,
      job,
    });
    if (!moved) {
      log.info({ run: run.id, noderole: run.noderoleId }, 'claim closed before dispatch; job not sent');
      return;
    }
    log.info(
      { run: run.id, noderole: run.noderoleId, node: node.name, role: role.name, lane: run.lane },
      'run dispatched',
    );
  }
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  return new Dispatcher(deps);
}
