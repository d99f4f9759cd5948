import { type SQL, sql } from 'drizzle-orm';
import {
  inventoryEvents,
  type NoderoleState,
  type NoderoleSummary,
} from '../../../shared/catalogue/index.js';
import { InvalidTransitionError } from '../../../shared/errors.js';
import { legalFrom, type Operation } from './states.js';
import { type GraphTx, type NoderoleRow, noderoleCols } from './tx.js';

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
 * The one place a noderole's state changes: writes it, logs old→new, and queues the hook event.
 * `extra` sets further columns in the same update.
 */
async function setState(
  g: GraphTx,
  nr: NoderoleRow,
  to: NoderoleState,
  reason: string,
  extra = sql``,
  /** A further condition on the row (aliases nr, r, n, d); when it does not hold nothing changes. */
  guard?: SQL,
): Promise<boolean> {
  if (nr.state === to && !guard) {
    // Same state: only the extra columns change; hooks fire on state changes only.
    await g.rows(sql`update inventory.noderoles set updated_at = now() ${extra} where id = ${nr.id}`);
    return true;
  }
  // One round trip: the update returns what the hook event carries.
  const summary = await g.one<NoderoleSummary>(sql`
    update inventory.noderoles nr set state = ${to}, version = nr.version + 1, updated_at = now() ${extra}
    from inventory.roles r, inventory.nodes n, inventory.deployments d
    where nr.id = ${nr.id} and r.id = nr.role_id and n.id = nr.node_id and d.id = nr.deployment_id
      ${guard ? sql`and ${guard}` : sql``}
    returning nr.id, nr.role_id as "roleId", r.name as role, nr.node_id as "nodeId", n.name as node,
              nr.deployment_id as "deploymentId", d.name as deployment, nr.state, nr.run_count as "runCount", nr.cohort`);
  if (!summary) {
    if (guard) return false;
    throw new Error(`noderole ${nr.id} vanished inside its transaction`);
  }
  const from = nr.state;
  nr.state = to;
  g.log.info(
    {
      noderole: nr.id,
      node: summary.node,
      role: summary.role,
      from,
      to,
      reason,
      correlationId: g.lineage.correlationId,
    },
    'noderole state changed',
  );
  g.emit(hook[to], { noderole: summary, from, reason });
  return true;
}

export async function activatable(g: GraphTx, id: number): Promise<boolean> {
  // FOR SHARE: a parent cannot change state until this transaction has acted on what it saw.
  const parents = await g.rows<{ state: string }>(sql`
    select p.state from inventory.noderole_edges e cross join lateral (
      select id, state from inventory.noderoles where id = e.parent_id for share) p
    where e.child_id = ${id} order by p.id`);
  return parents.every((p) => p.state === 'active');
}

/** A child as `children` reads it: whether its parents are all ACTIVE, and whether it has TODO/ERROR children. */
type Child = NoderoleRow & { ready: boolean; busyKids: boolean };

/**
 * Direct children of `id` in one of `states`, locked. FOR UPDATE re-reads a row another transaction has
 * just changed and checks the state again, so what comes back is still in one of `states`. Each child
 * also says whether all its parents are ACTIVE (the parents share-locked, so that stays true until this
 * transaction ends) and whether it has children in TODO or ERROR.
 */
async function children(g: GraphTx, id: number, states: NoderoleState[]): Promise<Child[]> {
  return g.rows<Child>(sql`
    select c.*,
      (select coalesce(bool_and(p.state = 'active'), true) from inventory.noderole_edges pe cross join lateral (
         select state from inventory.noderoles where id = pe.parent_id for share) p where pe.child_id = c.id) as ready,
      -- offset 0 keeps this a lookup by key per edge: flattened into a join, PostgreSQL without table
      -- statistics (autovacuum off) hashed every TODO/ERROR noderole on each call.
      exists (select 1 from inventory.noderole_edges ke cross join lateral (
                select 1 from inventory.noderoles k where k.id = ke.child_id and k.state in ('todo', 'error') offset 0) k
              where ke.parent_id = c.id) as "busyKids"
    from inventory.noderole_edges e cross join lateral (
      select ${noderoleCols(sql`nr`)} from inventory.noderoles nr
      where nr.id = e.child_id and nr.state in ${sql.raw(`(${states.map((s) => `'${s}'`).join(',')})`)} for update) c
    where e.parent_id = ${id} order by c.cohort, c.id`);
}

/** Direct children in ERROR or TODO are blocked, recursively (reference §2.3). */
async function blockTodoChildren(g: GraphTx, nr: NoderoleRow, reason: string) {
  for (const c of await children(g, nr.id, ['error', 'todo'])) await block(g, c, reason);
}

export async function todo(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  check('todo', nr);
  if (!(await activatable(g, nr.id))) {
    throw new InvalidTransitionError(`noderole ${nr.id} has parents that are not active`, {
      rule: 'todo needs every parent active',
    });
  }
  await todoActivatable(g, nr, reason);
}

/**
 * todo for a noderole whose parents this transaction has just seen (and share-locked) all ACTIVE.
 * `busyKids: false` says it has no TODO/ERROR children to block (a child cannot get there while this
 * noderole is locked and not ACTIVE), which saves the look.
 */
async function todoActivatable(g: GraphTx, nr: NoderoleRow, reason: string, busyKids = true): Promise<void> {
  await setState(g, nr, 'todo', reason);
  if (busyKids) await blockTodoChildren(g, nr, `parent ${nr.id} went back to todo`);
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
  await g.rows(sql`update inventory.noderoles set committed_data = proposed_data where id = ${nr.id}`);
  await blockOrTodo(g, nr, reason);
}

export async function propose(g: GraphTx, nr: NoderoleRow, reason = 'proposed'): Promise<void> {
  if (nr.state === 'proposed') return;
  await setState(g, nr, 'proposed', reason);
}

/**
 * A run starts: TODO/ACTIVE/TRANSITION → TRANSITION, runlog cleared, fencing token recorded. With
 * `runnable`, only if the noderole is still runnable as this statement sees it (its node alive and
 * available, its deployment committed, nothing else on the node in TRANSITION or ERROR); false if not.
 */
export async function transition(
  g: GraphTx,
  nr: NoderoleRow,
  token: string,
  runnable = false,
): Promise<boolean> {
  check('transition', nr);
  return setState(
    g,
    nr,
    'transition',
    `run ${token} started`,
    sql`, runlog = '', run_token = ${token}`,
    runnable
      ? sql`n.alive and n.available and d.state = 'committed' and nr.available
          and not exists (select 1 from inventory.noderoles o where o.node_id = nr.node_id and o.id <> nr.id and o.state in ('transition', 'error'))`
      : undefined,
  );
}

/**
 * A run succeeded. On a dead or unavailable node the noderole goes back through block_or_todo instead of
 * ACTIVE, so nothing is left in TRANSITION (DESIGN §4, #6). Children whose parents are now all ACTIVE
 * are promoted to TODO.
 */
export async function active(
  g: GraphTx,
  nr: NoderoleRow,
  node: { alive: boolean; available: boolean },
  runlog: string,
  reason: string,
): Promise<void> {
  check('active', nr);
  const ran = sql`, run_count = run_count + 1, runlog = ${runlog}, run_token = null`;
  nr.runCount++;
  if (!node.alive || !node.available) {
    await g.rows(sql`update inventory.noderoles set updated_at = now() ${ran} where id = ${nr.id}`);
    await blockOrTodo(g, nr, `run finished but node is ${node.alive ? 'unavailable' : 'not alive'}`);
    return;
  }
  await setState(g, nr, 'active', reason, ran);
  for (const c of await children(g, nr.id, ['blocked'])) {
    if (c.ready) await todoActivatable(g, c, `parents of ${c.id} all active`, c.busyKids);
  }
}

/**
 * A run failed: ERROR, and every descendant not PROPOSED/TRANSITION becomes BLOCKED, each with its own
 * on_blocked event (DESIGN §4, #5). error! on a BLOCKED noderole is ignored.
 */
export async function error(g: GraphTx, nr: NoderoleRow, runlog: string, reason: string): Promise<void> {
  if (nr.state === 'blocked') return;
  check('error', nr);
  await setState(g, nr, 'error', reason, sql`, runlog = ${runlog}, run_token = null`);
  const desc = await g.rows<{ id: number }>(sql`
    with recursive d(id) as (
      select child_id from inventory.noderole_edges where parent_id = ${nr.id}
      union select e.child_id from inventory.noderole_edges e join d on e.parent_id = d.id)
    select nr.id from d join inventory.noderoles nr on nr.id = d.id
    where nr.state not in ('proposed', 'transition', 'blocked') order by nr.cohort, nr.id`);
  for (const { id } of desc) {
    const c = await g.noderole(id);
    if (c && !['proposed', 'transition', 'blocked'].includes(c.state))
      await setState(g, c, 'blocked', `ancestor ${nr.id} failed`);
  }
}

/** Node died: non-PROPOSED noderoles go through block_or_todo (reference §4.1). */
export async function deactivate(g: GraphTx, nr: NoderoleRow, reason: string): Promise<void> {
  if (nr.state === 'proposed') return;
  await g.rows(sql`update inventory.noderoles set run_token = null where id = ${nr.id}`);
  await blockOrTodo(g, nr, reason);
}
