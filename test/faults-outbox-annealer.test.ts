import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectEvents,
  commitTopNodes,
  duplicateIds,
  type FaultRig,
  killAtFaultPoint,
  noderolesOf,
  startFaultRig,
} from './helpers/faults.js';
import { until } from './helpers/inventory.js';

// Plan T4 for the annealer: killed (-9) after it committed runs as dispatched, with their jobs in its
// outbox, before the relay published them (second case: published, not yet deleted). After a restart
// every job runs exactly once — one dispatch and one run log per noderole — every noderole ends ACTIVE,
// and an external subscriber sees one `run.finished` per run, none twice.
let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig(['inventory', 'jig-runner', 'gateway']);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
});

// Test speed: results a killed annealer had taken come back after 3 s, stranded claims after 3 s.
const annealerEnv = {
  CROWBAR_CLAIM_TIMEOUT_SECONDS: '3',
  CROWBAR_ANNEAL_SWEEP_MS: '500',
  CROWBAR_ANNEAL_ACK_WAIT_MS: '3000',
};

describe.each([
  ['outbox-before-publish', 'committed, not yet published'],
  ['outbox-after-publish', 'published, not yet deleted from the outbox'],
])('kill -9 of the annealer at %s (%s)', (point) => {
  it('after a restart each job runs once and each run is reported once', async () => {
    const sub = await collectEvents(rig.bus, 'run.>');
    try {
      const victim = await rig.spawn('annealer', {
        ...annealerEnv,
        CROWBAR_FAULT_AT: point,
        CROWBAR_FAULT_MATCH: 'jig.run',
      });
      const tag = point.replace(/[^a-z]/g, '');
      const nodes = await commitTopNodes(rig, tag);
      await killAtFaultPoint(victim, point);
      const pending = await rig.db.query<{ id: string }>(
        `select envelope->>'id' as id from annealer.outbox where subject like 'cmd.jig.%'`,
      );
      expect(pending.rows.length).toBeGreaterThan(0);

      const restarted = await rig.spawn('annealer', annealerEnv);
      const noderoles = await noderolesOf(rig, nodes);
      expect(noderoles.length).toBeGreaterThanOrEqual(9);
      const done = (await until(
        'every noderole ACTIVE and every run reported',
        async () => {
          const left = await rig.db.query<{ n: number }>(
            `select count(*)::int as n from inventory.noderoles where id = any($1) and state <> 'active'`,
            [noderoles],
          );
          const runs = await rig.db.query<{ id: number; noderole_id: number }>(
            `select id, noderole_id from annealer.runs where noderole_id = any($1) and dispatched_at is not null`,
            [noderoles],
          );
          const reported = runs.rows.every((r) => sub.events.some((e) => e.data.runId === r.id));
          return left.rows[0]!.n === 0 && reported ? runs.rows : null;
        },
        60_000,
      ))!;
      // One dispatch per noderole, one run log per dispatched run, one event per run.
      expect(done.map((r) => r.noderole_id).sort((a, b) => a - b)).toEqual(
        [...noderoles].sort((a, b) => a - b),
      );
      const logs = await rig.db.query<{ run_id: number; n: number }>(
        'select run_id, count(*)::int as n from jig_runner.runlogs where run_id = any($1) group by run_id',
        [done.map((r) => r.id)],
      );
      expect(logs.rows).toHaveLength(done.length);
      expect(logs.rows.every((r) => r.n === 1)).toBe(true);
      for (const r of done) expect(sub.events.filter((e) => e.data.runId === r.id)).toHaveLength(1);
      expect(duplicateIds(sub.events)).toEqual([]);
      await until('outbox drained', async () => {
        const { rows } = await rig.db.query<{ n: number }>('select count(*)::int as n from annealer.outbox');
        return rows[0]!.n === 0;
      });
      await restarted.stop();
    } finally {
      await sub.stop();
    }
  }, 90_000);
});
