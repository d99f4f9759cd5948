import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { parsePayload } from '../../shared/bus/bus.js';
import { annealerMessages, type JigJob, jigJob } from '../../shared/catalogue/index.js';
import type { Db } from '../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry } from '../../shared/db/outbox.js';
import type { Faults } from '../../shared/fault.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import type { InventoryClient } from './inventory.js';
import { type AnnealerOutbox, outboxEntry } from './outbox.js';
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

/**
 * Claim → start in inventory → job through the outbox. A pass claims what is runnable within the caps
 * (one run per node and per noderole by the database's unique indexes, the normal lane's cap under an
 * advisory lock, so several annealers can pass at once) and dispatches each claim without waiting.
 */
export function createDispatcher(deps: {
  db: Db;
  bus: Bus;
  log: Logger;
  config: DispatchConfig;
  faults: Faults;
  inventory: InventoryClient;
  outbox: AnnealerOutbox;
  results: Pick<Results, 'report'>;
}) {
  const { db, bus, log, config, faults, inventory, outbox, results } = deps;
  // The runs table's writes are grouped like inventory's starts: one statement (and one commit) per batch.
  const markRunning = createBatcher({
    maxBatch: 128,
    maxInFlight: 2,
    send: async (rs: (store.Dispatched & { job: OutboxEntry })[]) => {
      // The job is committed with the run's `running` state: a crash between the two cannot strand a run.
      const moved = await db.transaction(async (tx) => {
        const ids = await store.markRunning(tx, rs);
        await enqueueOutbox(
          tx,
          outbox.table,
          rs.filter((r) => ids.has(r.id)).map((r) => r.job),
        );
        return ids;
      });
      outbox.flush();
      return rs.map((r) => moved.has(r.id));
    },
  });

  async function claimNormal(): Promise<store.RunRow[]> {
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
  async function claimHigh(): Promise<store.RunRow[]> {
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

  async function dispatch(run: store.RunRow): Promise<void> {
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
    const role = res.role;
    if (res.skipJig) {
      const why = res.skipReason ?? 'skipped: destructive role has already run on this node; jig skipped';
      log.info({ run: run.id, noderole: run.noderoleId, role: role.name, why }, 'jig skipped');
      await store.setRole(db, run.id, role);
      await results.report({ ...run, role: role.name }, { ok: true, wall: null, runlog: why }, 'skipped');
      return;
    }
    const data = res.data ?? {};
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
        node: res.node,
        data,
      },
      `jig:${run.id}`,
    );
    const moved = await markRunning({
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
      { run: run.id, noderole: run.noderoleId, node: res.node.name, role: role.name, lane: run.lane },
      'run dispatched',
    );
  }

  let stopping = false;
  const inFlight = new Set<Promise<void>>();
  /** Dispatch retries waiting out their backoff; stopping ends the waits at once. */
  const waits = new Set<() => void>();
  const pause = (ms: number) =>
    new Promise<void>((res) => {
      const done = () => {
        clearTimeout(timer);
        waits.delete(done);
        res();
      };
      const timer = setTimeout(done, ms);
      waits.add(done);
    });

  /**
   * Dispatches a claim; if inventory does not answer (down, restarting), tries again with the same
   * token — a start is idempotent per token — while the claim is still ours and younger than the claim
   * timeout. After that, or when the annealer stops, the claim stays for the sweep to put back in line.
   */
  async function dispatchClaim(run: store.RunRow): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await dispatch(run);
        return;
      } catch (err) {
        const age = Date.now() - new Date(run.createdAt).getTime();
        if (stopping || age > config.claimTimeoutSeconds * 1000) {
          log.warn({ err, run: run.id, attempt }, 'dispatch failed; the sweep will requeue the claim');
          return;
        }
        log.warn({ err, run: run.id, attempt }, 'dispatch failed; trying again with the same token');
        await pause(retryDelayMs(attempt));
        const state = await store.runState(db, run.id).catch(() => 'claimed');
        if (state !== 'claimed' || stopping) return;
      }
    }
  }

  return {
    /** One scheduling pass: claim, start and dispatch whatever is runnable within the caps. */
    async pass(): Promise<number> {
      const claims = [...(await claimHigh()), ...(await claimNormal())];
      // Dispatches go on without holding up the next pass: a slot freed meanwhile is filled at once.
      for (const c of claims) {
        const p: Promise<void> = dispatchClaim(c).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      return claims.length;
    },

    /** Resolves when every dispatch started so far has ended; with `stop`, retries give up at once. */
    async idle(stop = false): Promise<void> {
      if (stop) {
        stopping = true;
        for (const done of [...waits]) done();
      }
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}
