import { sql } from 'drizzle-orm';
import type { Json } from './data.js';
import { stageRunData } from './stage.js';
import { active, deactivate, error, transition } from './transitions.js';
import { type GraphTx, type NoderoleRow, noderoleCols } from './tx.js';

/**
 * Runnable noderoles (reference §3.1): TODO, available, deployment committed, node alive and available,
 * and no noderole of the node in TRANSITION or ERROR. At most one per node, lowest cohort then id.
 */
export async function candidates(g: GraphTx, limit: number, excludeNodeIds: number[]) {
  return g.rows<{ noderoleId: number; nodeId: number; cohort: number }>(sql`
    select * from (
      select distinct on (nr.node_id) nr.id as "noderoleId", nr.node_id as "nodeId", nr.cohort
      from inventory.noderoles nr
      join inventory.nodes n on n.id = nr.node_id
      join inventory.deployments d on d.id = nr.deployment_id
      where nr.state = 'todo' and nr.available and d.state = 'committed' and n.alive and n.available
        and not (nr.node_id = any(${`{${excludeNodeIds.join(',')}}`}::int[]))
        -- One read of the busy nodes (a small partial index), then a hash lookup per waiting noderole.
        and nr.node_id not in (select o.node_id from inventory.noderoles o where o.state in ('transition', 'error'))
      order by nr.node_id, nr.cohort, nr.id) x
    order by cohort, "noderoleId" limit ${limit}`);
}

export interface StartedRun {
  started: boolean;
  reason: string;
  /** Destructive role that already ran: finish without running the jig (DESIGN §4, #7). */
  skipJig: boolean;
  role: {
    name: string;
    jig: string;
    owner: string | null;
    destructive: boolean;
    scripts: Record<string, string>;
    timeoutSeconds: number;
  };
  node: { id: number; name: string; sshHostKey: string | null; hint: Json };
  data: Json;
}

type Locked = NoderoleRow & {
  alive: boolean;
  nodeAvailable: boolean;
  roleName: string;
  jig: string;
  owner: string | null;
  flags: string[];
  scripts: Record<string, string>;
  timeoutSeconds: number;
  nodeName: string;
  sshHostKey: string | null;
  hint: Json;
};

/** The noderole and its node, both locked, with what a run needs to know of its role and node. */
async function lockForRun(g: GraphTx, noderoleId: number): Promise<Locked | undefined> {
  return g.one<Locked>(sql`
    select ${noderoleCols(sql`nr`)}, n.alive, n.available as "nodeAvailable", r.name as "roleName", r.jig, r.owner,
           r.flags, r.scripts, r.timeout_seconds as "timeoutSeconds", n.name as "nodeName",
           n.ssh_host_key as "sshHostKey", n.hint
    from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id join inventory.roles r on r.id = nr.role_id
    where nr.id = ${noderoleId} for update of nr, n`);
}

/**
 * Starts a run with fencing token `token`: the noderole must still be runnable (or ACTIVE for an
 * event-driven re-run) and its node must have nothing else in TRANSITION. Idempotent for the same token.
 */
export async function startRun(
  g: GraphTx,
  noderoleId: number,
  token: string,
  rerun: boolean,
): Promise<StartedRun | { started: false; reason: string }> {
  // The node row lock serialises run starts on one node; the check below runs after it, on a fresh
  // snapshot, so it sees a run another transaction started on this node while we waited.
  const nr = await lockForRun(g, noderoleId);
  if (!nr) return { started: false, reason: 'noderole gone' };
  const already = nr.state === 'transition' && nr.runToken === token;
  if (!already) {
    const stateOk = nr.state === 'todo' || (rerun && nr.state === 'active');
    // The guarded update is a new statement, so it sees any run started on this node while we waited.
    if (!stateOk || !(await transition(g, nr, token, true)))
      return { started: false, reason: `not runnable (state ${nr.state})` };
  }
  const destructive = nr.flags.includes('destructive');
  return {
    started: true,
    reason: already ? 'already started' : 'started',
    skipJig: destructive && nr.runCount > 0,
    role: {
      name: nr.roleName,
      jig: nr.jig,
      owner: nr.owner,
      destructive,
      scripts: nr.scripts,
      timeoutSeconds: nr.timeoutSeconds,
    },
    node: { id: nr.nodeId, name: nr.nodeName, sshHostKey: nr.sshHostKey, hint: nr.hint },
    data: await stageRunData(g, noderoleId),
  };
}

/** Applies a run's result if `token` is still the noderole's current one; a late or duplicate result changes nothing. */
export async function finishRun(
  g: GraphTx,
  r: { noderoleId: number; token: string; ok: boolean; wall: Json | null; runlog: string; requeue?: boolean },
): Promise<{ applied: boolean; state: string }> {
  const nr = await g.one<NoderoleRow & { alive: boolean; nodeAvailable: boolean }>(sql`
    select ${noderoleCols(sql`nr`)}, n.alive, n.available as "nodeAvailable"
    from inventory.noderoles nr join inventory.nodes n on n.id = nr.node_id where nr.id = ${r.noderoleId} for update of nr`);
  if (!nr) return { applied: false, state: 'gone' };
  if (nr.state !== 'transition' || nr.runToken !== r.token) return { applied: false, state: nr.state };
  const runlog = r.runlog.slice(-65_536);
  if (r.requeue) {
    await deactivate(g, nr, `run ${r.token} was lost before dispatch; back in line`);
  } else if (r.ok) {
    if (r.wall)
      await g.rows(
        sql`update inventory.noderoles set wall = ${JSON.stringify(r.wall)}::jsonb where id = ${nr.id}`,
      );
    await active(g, nr, { alive: nr.alive, available: nr.nodeAvailable }, runlog, `run ${r.token} succeeded`);
  } else {
    await error(g, nr, runlog, `run ${r.token} failed`);
  }
  return { applied: true, state: nr.state };
}

/** GET /anneal (reference §3.9). */
export async function annealStatus(
  g: GraphTx,
): Promise<{ status: 'failed' | 'working' | 'scheduled' | 'finished'; counts: Record<string, number> }> {
  const rows = await g.rows<{ state: string; n: number }>(sql`
    select nr.state, count(*)::int as n from inventory.noderoles nr join inventory.deployments d on d.id = nr.deployment_id
    where d.state = 'committed' group by nr.state`);
  const counts = Object.fromEntries(rows.map((r) => [r.state, r.n]));
  const status = counts.error
    ? 'failed'
    : counts.transition
      ? 'working'
      : counts.todo
        ? 'scheduled'
        : 'finished';
  return { status, counts };
}
