import { desc, eq, sql } from 'drizzle-orm';
import type { Bus } from '../../shared/bus/bus.js';
import {
  type AllocationSummary,
  alivenessMessages,
  type NodeSummary,
  type ProbeRecord,
  type ProbeVerdict,
  wireType,
} from '../../shared/catalogue/index.js';
import type { Database, Db } from '../../shared/db/database.js';
import { enqueueOutbox } from '../../shared/db/outbox.js';
import { addresses, nodes, outbox, probeHistory, probeState } from './db/schema.js';
import { type HysteresisState, step } from './domain/hysteresis.js';
import type { ProbeOutcome, ProbeTarget } from './probes/pipeline.js';

export const outboxChannel = 'aliveness_probe_outbox';

export interface ProjectedNode {
  id: number;
  name: string;
  alive: boolean;
  available: boolean;
  system: boolean;
  sshHostKey: string | null;
  addresses: string[];
  verdict: ProbeVerdict;
  holdUntil: Date | null;
}

export interface Applied {
  node: ProjectedNode;
  from: ProbeVerdict;
  state: HysteresisState;
  changed: boolean;
}

/** A transaction's handle, as `db.transaction` passes it. */
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface OutcomeOptions {
  trigger: ProbeRecord['trigger'];
  now: Date;
  failuresToDead: number;
  reporting: (n: ProjectedNode) => boolean;
}

/** The only queries of the aliveness-probe service. */
export function createStore(database: Database, bus: Bus) {
  const { db } = database;
  return {
    upsertNode: (n: NodeSummary, eventTime: Date, deleted = false) => upsertNode(db, n, eventTime, deleted),
    holdAfterExternalChange: (nodeId: number, until: Date) => holdAfterExternalChange(db, nodeId, until),
    setProjectedAlive: (nodeId: number, alive: boolean) => setProjectedAlive(db, nodeId, alive),
    upsertAddress: (a: AllocationSummary, deleted: boolean) => upsertAddress(db, a, deleted),
    listNodes: (onlyId?: number, exec: Pick<Db, 'execute'> = db) => listNodes(exec, onlyId),
    targets,
    applyOutcome: (o: ProbeOutcome, opts: OutcomeOptions) => applyOutcome(db, bus, o, opts),
    health: (nodeId: number, limit: number) => health(db, nodeId, limit),
    pruneHistory: (keep: number) => pruneHistory(db, keep),
  };
}
export type Store = ReturnType<typeof createStore>;

function ensureState(db: Db, nodeId: number) {
  return db.insert(probeState).values({ nodeId }).onConflictDoNothing();
}

/** Upserts a node by id unless a newer fact is already stored (redeliveries arrive late). */
async function upsertNode(db: Db, n: NodeSummary, eventTime: Date, deleted: boolean) {
  const row = {
    id: n.id,
    name: n.name,
    alive: n.alive,
    available: n.available,
    // The admin node is this machine: like a phantom node, its aliveness is the control plane's own
    // (reference §4.1 "system/phantom nodes always count as alive"), so it is neither probed nor reported.
    system: n.system || n.admin,
    sshHostKey: n.sshHostKey,
    deleted,
    eventTime,
  };
  await db
    .insert(nodes)
    .values(row)
    .onConflictDoUpdate({
      target: nodes.id,
      set: { ...row, id: undefined },
      setWhere: sql`${nodes.eventTime} <= excluded.event_time`,
    });
  if (!deleted) await ensureState(db, n.id);
}

/** Someone else changed aliveness: start the hysteresis afresh and hold reports until `until`. */
async function holdAfterExternalChange(db: Db, nodeId: number, until: Date) {
  await ensureState(db, nodeId);
  await db
    .update(probeState)
    .set({ verdict: 'unknown', failures: 0, holdUntil: until })
    .where(eq(probeState.nodeId, nodeId));
}

/** Records what inventory answered to our report, so we do not report twice before its event. */
async function setProjectedAlive(db: Db, nodeId: number, alive: boolean) {
  await db.update(nodes).set({ alive }).where(eq(nodes.id, nodeId));
}

async function upsertAddress(db: Db, a: AllocationSummary, deleted: boolean) {
  const row = {
    allocationId: a.id,
    nodeId: a.nodeId,
    address: a.address.replace(/\/\d+$/, ''),
    family: a.family,
    deleted,
  };
  await db
    .insert(addresses)
    .values(row)
    .onConflictDoUpdate({ target: addresses.allocationId, set: deleted ? { deleted } : row });
}

/** Every live node with its admin addresses and hysteresis verdict. */
async function listNodes(exec: Pick<Db, 'execute'>, onlyId?: number): Promise<ProjectedNode[]> {
  const rows = await exec.execute<{
    id: number;
    name: string;
    alive: boolean;
    available: boolean;
    system: boolean;
    ssh_host_key: string | null;
    addrs: string[] | null;
    verdict: ProbeVerdict | null;
    hold_until: string | null;
  }>(sql`
    select n.id, n.name, n.alive, n.available, n.system, n.ssh_host_key, s.verdict, s.hold_until,
           array_agg(a.address order by a.address) filter (where a.address is not null) as addrs
    from ${nodes} n
    left join ${addresses} a on a.node_id = n.id and not a.deleted
    left join ${probeState} s on s.node_id = n.id
    where not n.deleted ${onlyId === undefined ? sql`` : sql`and n.id = ${onlyId}`}
    group by n.id, s.node_id
    order by n.id`);
  return rows.rows.map((r) => ({
    id: r.id,
    name: r.name,
    alive: r.alive,
    available: r.available,
    system: r.system,
    sshHostKey: r.ssh_host_key,
    addresses: r.addrs ?? [],
    verdict: r.verdict ?? 'unknown',
    holdUntil: r.hold_until ? new Date(r.hold_until) : null,
  }));
}

function targets(list: ProjectedNode[]): ProbeTarget[] {
  return list.map((n) => ({
    nodeId: n.id,
    addresses: n.addresses,
    hostKey: n.sshHostKey,
    recovering: n.verdict === 'dead',
  }));
}

/**
 * Stores one probe result and steps the hysteresis, under a row lock so a periodic sweep and an
 * on-demand probe of the same node serialise. A verdict change leaves with its event (outbox).
 */
function applyOutcome(db: Db, bus: Bus, o: ProbeOutcome, opts: OutcomeOptions): Promise<Applied | null> {
  return db.transaction(async (tx) => {
    await tx.insert(probeState).values({ nodeId: o.nodeId }).onConflictDoNothing();
    const [cur] = await tx.select().from(probeState).where(eq(probeState.nodeId, o.nodeId)).for('update');
    // Inside the transaction: a second connection per transaction could exhaust a small pool.
    const [node] = await listNodes(tx, o.nodeId);
    if (!cur || !node) return null;
    const from = cur.verdict as ProbeVerdict;
    const before: HysteresisState = { verdict: from, failures: cur.failures, reason: cur.reason };
    if (o.ok === null) {
      // Not probeable (no admin address or no pinned key): say why in the health view, but write no
      // history row every sweep for a node nobody can reach yet.
      if (cur.reason !== o.reason)
        await tx.update(probeState).set({ reason: o.reason }).where(eq(probeState.nodeId, o.nodeId));
      return { node, from, state: { ...before, reason: o.reason }, changed: false };
    }
    const r = await recordProbe(tx, o, o.ok, before, opts);
    if (r.changed) await enqueueVerdictChanged(tx, bus, node, from, r.next, opts.reporting(node));
    return { node: { ...node, verdict: r.next.verdict }, from, state: r.next, changed: r.changed };
  });
}

/** One history row for a probe that ran, and the hysteresis stepped by its result. */
async function recordProbe(
  tx: Tx,
  o: ProbeOutcome,
  ok: boolean,
  before: HysteresisState,
  opts: OutcomeOptions,
) {
  await tx.insert(probeHistory).values({
    nodeId: o.nodeId,
    at: opts.now,
    ok,
    stage: o.stage,
    reason: o.reason,
    address: o.address,
    durationMs: o.durationMs,
    trigger: opts.trigger,
  });
  const r = step(before, ok ? 'ok' : 'fail', o.reason, opts.failuresToDead);
  await tx
    .update(probeState)
    .set({
      verdict: r.next.verdict,
      failures: r.next.failures,
      reason: r.next.reason,
      lastProbeAt: opts.now,
      ...(ok ? { lastSuccessAt: opts.now } : { lastFailureAt: opts.now }),
    })
    .where(eq(probeState.nodeId, o.nodeId));
  return r;
}

async function enqueueVerdictChanged(
  tx: Tx,
  bus: Bus,
  node: ProjectedNode,
  from: ProbeVerdict,
  next: HysteresisState,
  reported: boolean,
) {
  const def = alivenessMessages.verdictChanged;
  const envelope = bus.envelope(wireType(def), {
    nodeId: node.id,
    node: node.name,
    from,
    to: next.verdict,
    reason: next.reason,
    consecutiveFailures: next.failures,
    reported,
  });
  await enqueueOutbox(tx, outbox, [{ subject: def.subject, envelope }], outboxChannel);
}

async function health(db: Db, nodeId: number, limit: number) {
  const [state] = await db.select().from(probeState).where(eq(probeState.nodeId, nodeId));
  const history = await db
    .select()
    .from(probeHistory)
    .where(eq(probeHistory.nodeId, nodeId))
    .orderBy(desc(probeHistory.id))
    .limit(limit);
  return { state: state ?? null, history };
}

/** Keeps the newest `keep` probe records per node. */
async function pruneHistory(db: Db, keep: number) {
  await db.execute(sql`
    delete from ${probeHistory} h using (
      select id from (
        select id, row_number() over (partition by node_id order by id desc) as rn from ${probeHistory}
      ) x where x.rn > ${keep}
    ) old where h.id = old.id`);
}
