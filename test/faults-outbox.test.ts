import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectEvents,
  commitTopNodes,
  duplicateIds,
  type FaultRig,
  killAtFaultPoint,
  noderolesOf,
  type SeenEvent,
  startFaultRig,
} from './helpers/faults.js';
import { until } from './helpers/inventory.js';

// Plan T4 for inventory: the process is killed (-9) after transactions committed their events to the
// outbox and before the relay published them (and, second case, after publishing and before deleting
// them). After a restart an external JetStream subscriber sees every event exactly once: per noderole
// each event's `from` is the state of the one before (no gap) and no envelope id twice (no duplicate).
let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig(['annealer', 'jig-runner', 'gateway']);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
});

/** Per noderole, its events in stream order must chain: the first from nothing, each from the last. */
function chainProblems(events: SeenEvent[], noderoles: number[]): string[] {
  const problems: string[] = [];
  for (const id of noderoles) {
    const mine = events.filter((e) => e.data.noderole.id === id);
    let last: string | null = null;
    for (const e of mine) {
      if (e.data.from !== last) problems.push(`noderole ${id}: ${e.type} from ${e.data.from} after ${last}`);
      last = e.data.noderole.state;
    }
    if (last !== 'active') problems.push(`noderole ${id}: last event leaves it ${last}`);
  }
  return problems;
}

describe.each([
  ['outbox-before-publish', 'committed, not yet published'],
  ['outbox-after-publish', 'published, not yet deleted from the outbox'],
])('kill -9 of inventory at %s (%s)', (point) => {
  it('after a restart every event arrives once, in order per noderole', async () => {
    const sub = await collectEvents(rig.bus, 'noderole.>');
    try {
      const victim = await rig.spawn('inventory', {
        CROWBAR_FAULT_AT: point,
        CROWBAR_FAULT_MATCH: 'noderole.active',
      });
      const tag = point.replace(/[^a-z]/g, '');
      const nodes = await commitTopNodes(rig, tag);
      await killAtFaultPoint(victim, point);
      const pending = await rig.db.query<{ id: string; subject: string }>(
        `select envelope->>'id' as id, subject from inventory.outbox where subject like 'evt.noderole.%' order by id`,
      );
      expect(pending.rows.some((r) => r.subject.includes('noderole.active'))).toBe(true);

      const restarted = await rig.spawn('inventory');
      const noderoles = await noderolesOf(rig, nodes);
      expect(noderoles.length).toBeGreaterThanOrEqual(9);
      await until(
        'every noderole ACTIVE and its events seen',
        async () => {
          const { rows } = await rig.db.query<{ n: number }>(
            `select count(*)::int as n from inventory.noderoles where node_id = any($1) and state <> 'active'`,
            [nodes],
          );
          const pendingSeen = pending.rows.every((p) => sub.events.some((e) => e.id === p.id));
          return rows[0]!.n === 0 && pendingSeen && chainProblems(sub.events, noderoles).length === 0;
        },
        60_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${chainProblems(sub.events, noderoles).join('; ')}`);
      });
      expect(duplicateIds(sub.events)).toEqual([]);
      for (const p of pending.rows) expect(sub.events.filter((e) => e.id === p.id)).toHaveLength(1);
      // Invariant 4: nothing left in the outbox once things are quiet.
      await until('outbox drained', async () => {
        const { rows } = await rig.db.query<{ n: number }>('select count(*)::int as n from inventory.outbox');
        return rows[0]!.n === 0;
      });
      await restarted.stop();
    } finally {
      await sub.stop();
    }
  }, 90_000);
});
