import type { SQL } from 'drizzle-orm';
import { inventoryEvents, type NoderoleState } from '../../../shared/catalogue/index.js';
import { InvalidTransitionError } from '../../../shared/errors.js';
import { descendantsToBlock, lockChildren, shareLockParentStates } from '../store/graph.js';
import {
  clearRunToken,
  commitNoderoleData,
  type NoderoleRow,
  noColumns,
  runErrorColumns,
  runnableGuard,
  runStartColumns,
  runSuccessColumns,
  type StateColumns,
  setNoderoleStates,
  settleNoderoleRun,
  touchNoderole,
} from '../store/noderoles.js';
import type { JsonObject } from './data.js';
import { legalFrom, type Operation } from './states.js';
import type { GraphTx } from './tx.js';

const hook = {
  error: inventoryEvents.noderoleError,
  active: inventoryEvents.noderoleActive,
  todo: inventoryEvents.noderoleTodo,
  transition: inventoryEvents.noderoleTransition,
  blocked: inventoryEvents.noderoleBlocked,
  proposed: inventoryEvents.noderoleProposed,
} as const;

function check(op: Operation, nr: NoderoleRow) {
  if (!legalFrom[op].includes(nr.state)) {
    throw new InvalidTransitionError(`noderole ${nr.id} cannot ${op} from ${nr.state}`, {
      rule: `${op} is legal from ${legalFrom[op].join(', ')}`,
    });
  }
}

/**
 * The one place noderole states change: writes `to` on every row of `nrs` (locked by the caller) in one
 * statement, logs old→new per row, and queues each row's hook event, in the order of `nrs`. `extra` sets
 * further columns in the same update; with `guard` (aliases nr, r, n, d), rows where it does not hold
 * stay as they are. Answers the ids that changed.
 */
async function setStates(
  g: GraphTx,
  nrs: NoderoleRow[],
  to: NoderoleState,
  reason: (nr: NoderoleRow) => string,
  extra: StateColumns = noColumns,
  guard?: SQL,
): Promise<Set<number>> {
  if (nrs.length === 0) return new Set();
  const changed = await setNoderoleStates(
    g,
    nrs.map((x) => x.id),
    to,
    extra,
    guard,
  );
  const byId = new Map(changed.map((c) => [c.id, c]));
  for (const nr of nrs) {
    const summary = byId.get(nr.id);
    if (!summary || nr.state === to) continue;
    const from = nr.state;
    const why = reason(nr);
    nr.state = to;
    g.log.info(
      {
        noderole: nr.id,
        node: summary.node,
        role: summary.role,
        from,
        to,
        reason: why,
        correlationId: g.lineage.correlationId,
      },
      'noderole state changed',
    );
    // Hooks are suppressed while the deployment is proposed (reference §1.7, §3.8): e.g. an OS install
    // going TODO must not change the node's bootenv before the operator commits.
    const { deploymentState, ...noderole } = summary;
    if (deploymentState === 'committed') g.emit(hook[to], { noderole, from, reason: why });
  }
  return new Set(byId.keys());
}

/** `setStates` for one noderole. Same state: only the extra columns change (hooks fire on changes only). */
async function setState(
  g: GraphTx,
  nr: NoderoleRow,
  to: NoderoleState,
  reason: string,
  extra: StateColumns = noColumns,
  guard?: SQL,
): Promise<boolean> {
  if (nr.state === to && !guard) {
    await touchNoderole(g, nr.id, extra);
    return true;
  }
  const done = await setStates(g, [nr], to, () => reason, extra, guard);
  if (done.size === 0 && !guard) throw new Error(`noderole ${nr.id} vanished inside its transaction`);
  return done.size > 0;
}

export async function activatable(g: GraphTx, id: number): Promise<boolean> {
  const parents = await shareLockParentStates(g, id);
  return parents.every((p) => p.state === 'active');
}

/**
 * Direct children of the noderoles `ids` in one of `states`, locked, each once. FOR UPDATE re-reads a row
 * another transaction has just changed and checks the state again, so what comes back is still in one of
 * `states`. Each child also says whether all its parents are ACTIVE (the parents share-locked, so that
 * stays true until this transaction ends) and whether it has children in TODO or ERROR.
 */
async function children(g: GraphTx, ids: number[], states: NoderoleState[]) {
  const rows = await lockChildren(g, ids, states);
  const seen = new Set<number>();
  return rows.filter((c) => !seen.has(c.id) && seen.add(c.id));
}

/** Direct children in ERROR or TODO are blocked, recursively (reference §2.3). */
async function blockTodoChildren(g: GraphTx, nr: NoderoleRow, reason: string) {
  for (const c of await children(g, [nr.id], ['error', 'todo'])) await block(g, c, reason);
}

export async function todo(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  check('todo', nr);
  if (!(await activatable(g, nr.id))) {
    throw new InvalidTransitionError(`noderole ${nr.id} has parents that are not active`, {
      rule: 'todo needs every parent active',
    });
  }
  await setState(g, nr, 'todo', reason);
  await blockTodoChildren(g, nr, `parent ${nr.id} went back to todo`);
}

export async function block(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  await setState(g, nr, 'blocked', reason);
  await blockTodoChildren(g, nr, `parent ${nr.id} blocked`);
}

export async function blockOrTodo(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  if (await activatable(g, nr.id)) await todo(g, nr, reason);
  else await block(g, nr, reason);
}

export async function commit(g: GraphTx, nr: NoderoleRow, reason = 'committed'): Promise<void> {
  check('commit', nr);
  await commitNoderoleData(g, nr.id);
  await blockOrTodo(g, nr, reason);
}

export async function propose(g: GraphTx, nr: NoderoleRow, reason = 'proposed'): Promise<void> {
  if (nr.state === 'proposed') return;
  await setState(g, nr, 'proposed', reason);
}

/**
 * Runs start: TODO/ACTIVE → TRANSITION, runlog cleared, fencing token recorded — each only if still
 * runnable as this statement sees it (node alive and available, deployment committed, nothing else on
 * the node in TRANSITION or ERROR). The rows must be locked, with their nodes, and on different nodes:
 * one statement cannot see its own other rows. Answers the ids that started.
 */
export async function transitionMany(
  g: GraphTx,
  starts: { nr: NoderoleRow; token: string }[],
): Promise<Set<number>> {
  if (starts.length === 0) return new Set();
  for (const s of starts) check('transition', s.nr);
  const ids = starts.map((s) => s.nr.id);
  const tokens = new Map(starts.map((s) => [s.nr.id, s.token]));
  return setStates(
    g,
    starts.map((s) => s.nr),
    'transition',
    (nr) => `run ${tokens.get(nr.id)} started`,
    runStartColumns(
      ids,
      starts.map((s) => s.token),
    ),
    runnableGuard,
  );
}

/** A noderole whose run succeeded, with what the run left behind. */
export interface Succeeded {
  nr: NoderoleRow;
  runlog: string;
  /** Attributes the run wrote (the wall); null leaves the wall as it was. */
  wall: JsonObject | null;
  reason: string;
}

/**
 * Runs succeeded on live, available nodes: all go ACTIVE in one statement, then their children whose
 * parents are now all ACTIVE are promoted to TODO in one more. (On a dead or unavailable node a finished
 * run goes through block_or_todo instead — see `settle`.)
 */
export async function activeMany(g: GraphTx, done: Succeeded[]): Promise<void> {
  if (done.length === 0) return;
  for (const d of done) check('active', d.nr);
  const ids = done.map((d) => d.nr.id);
  const reasons = new Map(done.map((d) => [d.nr.id, d.reason]));
  await setStates(
    g,
    done.map((d) => d.nr),
    'active',
    (nr) => reasons.get(nr.id) ?? '',
    runSuccessColumns(
      ids,
      done.map((d) => d.runlog),
      done.map((d) => (d.wall === null ? null : JSON.stringify(d.wall))),
    ),
  );
  for (const d of done) d.nr.runCount++;
  const ready = (await children(g, ids, ['blocked'])).filter((c) => c.ready);
  await setStates(g, ready, 'todo', (c) => `parents of ${c.id} all active`);
  // A promoted child with TODO/ERROR children of its own blocks them, as `todo` does; `busyKids` saves
  // that look for the others.
  for (const c of ready) if (c.busyKids) await blockTodoChildren(g, c, `parent ${c.id} went back to todo`);
}

/**
 * A run succeeded on a node that is dead or unavailable: the noderole goes back through block_or_todo
 * instead of ACTIVE, so nothing is left in TRANSITION (DESIGN §4, #6).
 */
export async function settle(g: GraphTx, nr: NoderoleRow, runlog: string, why: string): Promise<void> {
  check('active', nr);
  nr.runCount++;
  await settleNoderoleRun(g, nr.id, runlog);
  await blockOrTodo(g, nr, why);
}

/**
 * A run failed: ERROR, and every descendant not PROPOSED/TRANSITION becomes BLOCKED, each with its own
 * on_blocked event (DESIGN §4, #5). error! on a BLOCKED noderole is ignored.
 */
export async function error(g: GraphTx, nr: NoderoleRow, runlog: string, reason: string): Promise<void> {
  if (nr.state === 'blocked') return;
  check('error', nr);
  await setState(g, nr, 'error', reason, runErrorColumns(runlog));
  const desc = await descendantsToBlock(g, nr.id);
  for (const { id } of desc) {
    const c = await g.noderole(id);
    if (c && !['proposed', 'transition', 'blocked'].includes(c.state))
      await setState(g, c, 'blocked', `ancestor ${nr.id} failed`);
  }
}

/** Node died: non-PROPOSED noderoles go through block_or_todo (reference §4.1). */
export async function deactivate(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  if (nr.state === 'proposed') return;
  await clearRunToken(g, nr.id);
  await blockOrTodo(g, nr, reason);
}
