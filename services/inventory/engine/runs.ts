import type { NoderoleRow } from '../store/noderoles.js';
import { lockForFinish, lockForRun as lockRows, runnable, stateCounts } from '../store/runs.js';
import type { JsonObject } from './data.js';
import { stageRunData } from './stage.js';
import { activeMany, deactivate, error, type Succeeded, settle, transitionMany } from './transitions.js';
import type { GraphTx } from './tx.js';

/**
 * Runnable noderoles (reference §3.1): TODO, available, deployment committed, node alive and available,
 * and no noderole of the node in TRANSITION or ERROR. At most one per node, lowest cohort then id.
 */
export async function candidates(g: GraphTx, limit: number, excludeNodeIds: number[]) {
  return runnable(g, limit, excludeNodeIds);
}

export interface StartedRun {
  started: boolean;
  reason: string;
  /**
   * Finish without running the jig: a destructive role that already ran (DESIGN §4, #7), or a script
   * role on the admin node while host changes are not enabled. `skipReason` says which.
   */
  skipJig: boolean;
  skipReason?: string;
  role: {
    name: string;
    jig: string;
    owner: string | null;
    destructive: boolean;
    scripts: Record<string, string>;
    timeoutSeconds: number;
  };
  node: { id: number; name: string; sshHostKey: string | null; hint: JsonObject };
  data: JsonObject;
}

/** The noderoles and their nodes, all locked in id order, with what a run needs of role and node. */
async function lockForRun(g: GraphTx, ids: number[]) {
  const rows = await lockRows<JsonObject>(g, ids);
  return new Map(rows.map((r) => [r.id, r]));
}

export interface StartOptions {
  /** Whether script roles may run on the admin node, i.e. change this machine (`CROWBAR_ADMIN_HOST_CHANGES`). */
  adminHostChanges: boolean;
}

/** The runlog of a script role the admin node skipped: the control plane leaves its own host alone. */
export const hostSkip =
  'skipped: host changes not enabled (the admin node is this machine; set CROWBAR_ADMIN_HOST_CHANGES=true to let its script roles run here)';

export interface RunStart {
  noderoleId: number;
  token: string;
  /** An event-driven re-run of an ACTIVE noderole (the high lane). */
  rerun?: boolean;
}

/**
 * Starts runs, each with its fencing token: the noderole must still be runnable (or ACTIVE for an
 * event-driven re-run) and its node must have nothing else in TRANSITION. Idempotent for the same token.
 * All in one transaction and a few statements whatever their number; answers in the order asked.
 */
export async function startRuns(
  g: GraphTx,
  runs: RunStart[],
  opts: StartOptions = { adminHostChanges: false },
): Promise<(StartedRun | { started: false; reason: string })[]> {
  // The node row locks serialise run starts on a node; the guarded update runs after them, as a new
  // statement, so it sees a run another transaction started on the node while we waited.
  const locked = await lockForRun(g, [...new Set(runs.map((r) => r.noderoleId))]);
  const refused = new Map<number, string>();
  const starting: { nr: NoderoleRow; token: string; i: number }[] = [];
  const nodes = new Set<number>();
  for (const [i, r] of runs.entries()) {
    const nr = locked.get(r.noderoleId);
    if (!nr) refused.set(i, 'noderole gone');
    else if (nr.state === 'transition' && nr.runToken === r.token)
      continue; // already started with this token
    // One statement cannot see its own rows: a second start on a node (or noderole) is refused here.
    else if ((nr.state === 'todo' || (r.rerun === true && nr.state === 'active')) && !nodes.has(nr.nodeId)) {
      nodes.add(nr.nodeId);
      starting.push({ nr, token: r.token, i });
    } else refused.set(i, `not runnable (state ${nr.state})`);
  }
  const started = await transitionMany(g, starting);
  const fresh = new Set<number>();
  for (const s of starting) {
    if (started.has(s.nr.id)) fresh.add(s.i);
    else refused.set(s.i, `not runnable (state ${s.nr.state})`);
  }
  const ok = [...new Set(runs.filter((_, i) => !refused.has(i)).map((r) => r.noderoleId))];
  const data = ok.length > 0 ? await stageRunData(g, ok) : new Map<number, JsonObject>();
  return runs.map((r, i) => {
    const reason = refused.get(i);
    const nr = locked.get(r.noderoleId);
    if (reason !== undefined || !nr) return { started: false as const, reason: reason ?? 'noderole gone' };
    const destructive = nr.flags.includes('destructive');
    const once = destructive && nr.runCount > 0;
    const hostGuard = nr.admin && nr.jig === 'script' && !opts.adminHostChanges;
    // Opted in, the admin node's scripts run on this machine: over SSH to its loopback address unless
    // the node's hint names another.
    const hint =
      nr.admin && nr.jig === 'script' && nr.hint.ssh === undefined
        ? { ...nr.hint, ssh: { host: '127.0.0.1' } }
        : nr.hint;
    return {
      started: true,
      reason: fresh.has(i) ? 'started' : 'already started',
      skipJig: once || hostGuard,
      ...(once
        ? { skipReason: 'skipped: destructive role has already run on this node; jig skipped' }
        : hostGuard
          ? { skipReason: hostSkip }
          : {}),
      role: {
        name: nr.roleName,
        jig: nr.jig,
        owner: nr.owner,
        destructive,
        scripts: nr.scripts,
        timeoutSeconds: nr.timeoutSeconds,
      },
      node: { id: nr.nodeId, name: nr.nodeName, sshHostKey: nr.sshHostKey, hint },
      data: data.get(nr.id) ?? {},
    };
  });
}

export interface RunResult {
  noderoleId: number;
  token: string;
  ok: boolean;
  /** As the annealer's `runs.finish` carries it. */
  wall: JsonObject | null;
  runlog: string;
  /** The claim was lost before dispatch: nothing ran, back in line. */
  requeue?: boolean;
}

/**
 * Applies runs' results, each only if its token is still the noderole's current one (a late or duplicate
 * result changes nothing). Successes on live nodes are applied together; answers in the order given.
 */
export async function finishRuns(
  g: GraphTx,
  results: RunResult[],
): Promise<{ applied: boolean; state: string }[]> {
  const ids = [...new Set(results.map((r) => r.noderoleId))];
  const rows = await lockForFinish(g, ids);
  const locked = new Map(rows.map((r) => [r.id, r]));
  const applied = new Set<number>();
  const succeeded: Succeeded[] = [];
  const others: { r: RunResult; nr: (typeof rows)[number] }[] = [];
  const taken = new Set<number>();
  for (const [i, r] of results.entries()) {
    const nr = locked.get(r.noderoleId);
    if (nr?.state !== 'transition' || nr.runToken !== r.token || taken.has(nr.id)) continue;
    taken.add(nr.id);
    applied.add(i);
    const runlog = r.runlog.slice(-65_536);
    if (r.ok && !r.requeue && nr.alive && nr.nodeAvailable)
      succeeded.push({ nr, runlog, wall: r.wall, reason: `run ${r.token} succeeded` });
    else others.push({ r: { ...r, runlog }, nr });
  }
  await activeMany(g, succeeded);
  for (const { r, nr } of others) {
    if (r.requeue) await deactivate(g, nr, `run ${r.token} was lost before dispatch; back in line`);
    else if (r.ok)
      await settle(g, nr, r.runlog, `run finished but node is ${nr.alive ? 'unavailable' : 'not alive'}`);
    else await error(g, nr, r.runlog, `run ${r.token} failed`);
  }
  return results.map((r, i) => ({
    applied: applied.has(i),
    state: locked.get(r.noderoleId)?.state ?? 'gone',
  }));
}

/** GET /anneal (reference §3.9). */
export async function annealStatus(
  g: GraphTx,
): Promise<{ status: 'failed' | 'working' | 'scheduled' | 'finished'; counts: Record<string, number> }> {
  const rows = await stateCounts(g);
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
