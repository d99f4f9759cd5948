import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultRig, isStopped, logged, startFaultRig, waitLogged } from './helpers/faults.js';
import { until } from './helpers/inventory.js';
import { ensureFping } from './helpers/sshd.js';

// Plan T14 for the two locks one process holds for all: an annealer SIGSTOPped inside its claim
// transaction, holding the cap lock, and the sweeping aliveness-probe SIGSTOPped holding the sweep lock.
// The other instance goes on within a stated bound; after SIGCONT nothing runs twice.
const lockTimeoutMs = 1000;
const idleTxTimeoutMs = 3000;
const passMs = 100;
/** The claim bound: the stopped holder's transaction is ended, a waiter's try gives up and comes again. */
const claimBoundMs = idleTxTimeoutMs + lockTimeoutMs + passMs;
const leaderTimeoutMs = 2000;
const probeIntervalMs = 300;
let rig: FaultRig;

beforeAll(async () => {
  ensureFping();
  rig = await startFaultRig(['inventory', 'jig-runner', 'gateway']);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
});

async function chainOn(name: string) {
  const n = await rig.s.call('POST', '/nodes', { name: `${name}.faults.crowbar.test`, alive: true });
  expect((await rig.s.call('POST', '/node_roles', { node: n.body.id, role: 'test-top' })).status).toBe(201);
  return n.body.id as number;
}

const allActive = async (nodes: number[]) => {
  const { rows } = await rig.db.query<{ n: number }>(
    `select count(*)::int as n from inventory.noderoles where node_id = any($1) and state <> 'active'`,
    [nodes],
  );
  return rows[0]!.n === 0;
};

describe('SIGSTOP of an annealer holding the cap lock', () => {
  it(`the other annealer dispatches within ${claimBoundMs} ms; after SIGCONT nothing runs twice`, async () => {
    const env = {
      CROWBAR_ANNEAL_LOCK_TIMEOUT_MS: String(lockTimeoutMs),
      CROWBAR_ANNEAL_IDLE_TX_TIMEOUT_MS: String(idleTxTimeoutMs),
      // Results the stopped annealer had taken go to the other one after 3 s, not 30.
      CROWBAR_ANNEAL_ACK_WAIT_MS: '3000',
    };
    const a = await rig.spawn('annealer', {
      ...env,
      CROWBAR_FAULT_AT: 'annealer-cap-lock',
      CROWBAR_FAULT_HOLD_MS: '4000',
    });
    const b = await rig.spawn('annealer', env);
    const nodes: number[] = [];
    for (let i = 1; i <= 4; i++) nodes.push(await chainOn(`cap${i}`));
    for (const n of nodes) await rig.s.call('PUT', `/nodes/${n}/commit`);
    await waitLogged(a, 'fault point reached', { fault: 'annealer-cap-lock' }, 30_000);
    a.kill('SIGSTOP');
    try {
      await until('annealer stopped', () => isStopped(a.pid), 5000);
      // New work while A holds the lock, stopped: B must dispatch it.
      const late = await chainOn('cap-late');
      nodes.push(late);
      const committed = Date.now();
      await rig.s.call('PUT', `/nodes/${late}/commit`);
      await until('every noderole ACTIVE while A is stopped', () => allActive(nodes), 60_000);
      const { rows } = await rig.db.query<{ at: Date }>(
        `select min(r.dispatched_at) as at from annealer.runs r join inventory.noderoles nr on nr.id = r.noderole_id
         where nr.node_id = $1`,
        [late],
      );
      const waitedMs = rows[0]!.at.getTime() - committed;
      console.log(`[faults] cap lock held by a stopped annealer: new work dispatched after ${waitedMs} ms`);
      expect(waitedMs).toBeLessThan(claimBoundMs + 2000);
      expect(isStopped(a.pid)).toBe(true);
    } finally {
      a.kill('SIGCONT');
    }
    // A wakes up in a transaction PostgreSQL has ended: its claims are gone, it goes on as usual.
    await waitLogged(a, 'fault point released', { fault: 'annealer-cap-lock' }, 20_000);
    await waitLogged(a, 'anneal pass failed; will retry', {}, 20_000);
    const after = await chainOn('cap-after');
    nodes.push(after);
    await rig.s.call('PUT', `/nodes/${after}/commit`);
    await until('the node committed after SIGCONT ACTIVE too', () => allActive(nodes), 60_000);
    const runs = await rig.db.query<{ noderole_id: number; n: number; logs: number }>(
      `select r.noderole_id, count(*)::int as n,
              sum((select count(*) from jig_runner.runlogs l where l.run_id = r.id))::int as logs
       from annealer.runs r join inventory.noderoles nr on nr.id = r.noderole_id
       where nr.node_id = any($1) and r.dispatched_at is not null group by r.noderole_id`,
      [nodes],
    );
    expect(runs.rows).toHaveLength(nodes.length * 3);
    expect(runs.rows.filter((r) => r.n !== 1 || r.logs !== 1)).toEqual([]);
    expect(logged(b, 'run dispatched').length).toBeGreaterThan(0);
    await a.stop();
    await b.stop();
  }, 120_000);
});

describe('SIGSTOP of the sweeping aliveness-probe holding the sweep lock', () => {
  it(`the standby sweeps within ${leaderTimeoutMs + probeIntervalMs} ms; after SIGCONT the old leader stands down`, async () => {
    const env = {
      CROWBAR_PROBE_INTERVAL_MS: String(probeIntervalMs),
      CROWBAR_PROBE_LEADER_TIMEOUT_MS: String(leaderTimeoutMs),
    };
    // P1 leads and waits at the fault point (its heartbeat goes on meanwhile) while P2 starts and stands by.
    const p1 = await rig.spawn('aliveness-probe', {
      ...env,
      CROWBAR_FAULT_AT: 'prober-lock',
      CROWBAR_FAULT_HOLD_MS: '10000',
    });
    await waitLogged(p1, 'fault point reached', { fault: 'prober-lock' }, 30_000);
    const p2 = await rig.spawn('aliveness-probe', env);
    expect(logged(p2, 'this instance sweeps')).toHaveLength(0);
    p1.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      await until('prober stopped', () => isStopped(p1.pid), 5000);
      const took = await waitLogged(p2, 'this instance sweeps', { leader: true }, 30_000);
      const tookMs = Date.parse(String(took.time)) - stoppedAt;
      console.log(`[faults] sweep lock held by a stopped prober: the standby took over after ${tookMs} ms`);
      expect(tookMs).toBeLessThan(leaderTimeoutMs + probeIntervalMs + 2000);
    } finally {
      p1.kill('SIGCONT');
    }
    // Woken up mid-sweep: it must not apply that sweep, and must see the lock is the other's now.
    await waitLogged(p1, 'sweep abandoned: this instance no longer holds the sweep lock', {}, 20_000);
    await waitLogged(p1, 'another instance sweeps', { leader: false }, 20_000);
    expect(logged(p1, 'this instance sweeps', { leader: true })).toHaveLength(1);
    await p1.stop();
    await p2.stop();
  }, 90_000);
});
