import pg from 'pg';
import { expect } from 'vitest';
import type { TestEnv } from './env.js';
import { until } from './inventory.js';
import { type Stack, startStack } from './stack.js';

/** The services an anneal fault test runs, tuned for a quick anneal, with `env` on top (e.g. NATS_URL). */
export const startAnnealStack = (t: TestEnv, env: Record<string, string>) =>
  startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_CAP: '4',
    CROWBAR_ANNEAL_PASS_MS: '100',
    CROWBAR_ANNEAL_SWEEP_MS: '500',
    CROWBAR_PROBE_AFTER_RUN: 'false',
    ...env,
  });

/** ACTIVE noderoles of `deployment` now, through the API. */
export const activeCount = async (s: Stack, deployment: string) =>
  (
    (await s.call('GET', `/deployments/${deployment}/node_roles`)).body.noderoles as { state: string }[]
  ).filter((n) => n.state === 'active').length;

/** `prepareAnneal` of 20 nodes, committed, returned once 20 noderoles are ACTIVE (the anneal is under way). */
export async function annealUnderWay(s: Stack, deployment: string): Promise<{ total: number }> {
  const { total } = await prepareAnneal(s, deployment, 20);
  const commit = await s.call('PUT', `/deployments/${deployment}/commit`);
  if (commit.status !== 200) throw new Error(`commit ${deployment}: ${commit.status}`);
  await until('anneal under way', async () => (await activeCount(s, deployment)) >= 20, 60_000, 25);
  return { total };
}

/**
 * After the fault: waits for the anneal to settle, stops the writes, reports the fault's line and checks
 * what every fault test promises — every noderole ACTIVE or ERROR with a reason, no destructive role
 * twice, no write answered 2xx missing, and the stack creating a node again. `acked`: the writes must
 * have had answers (a fault of NATS itself may refuse all of them while the loop runs).
 */
export async function expectSurvived(opts: {
  s: Stack;
  databaseUrl: string;
  deployment: string;
  total: number;
  writes: ReturnType<typeof writeLoop>;
  fault: string;
  acked: boolean;
  settleMs?: number;
}) {
  const { s, databaseUrl, deployment, total, writes } = opts;
  const outcome = await annealOutcome(databaseUrl, deployment, opts.settleMs ?? 180_000);
  await writes.stop();
  const missing = await missingNodes(databaseUrl, writes.acked);
  reportFault(opts.fault, outcome, {
    attempts: writes.attempts(),
    acked: writes.acked.length,
    missing: missing.length,
  });
  expect(outcome.states.active ?? 0, JSON.stringify(outcome.states)).toBe(
    total - (outcome.states.error ?? 0),
  );
  expect(outcome.errorsWithoutReason).toBe(0);
  expect(outcome.destructiveTwice).toBe(0);
  if (opts.acked) expect(writes.acked.length).toBeGreaterThan(0);
  else expect(writes.attempts()).toBeGreaterThan(0);
  expect(missing).toEqual([]);
  expect((await s.call('POST', '/nodes', { name: `after.${deployment}.crowbar.test` })).status).toBe(201);
}

/**
 * The anneal the infrastructure fault tests break: `nodes` nodes in a deployment of their own, each with
 * the ten-role noop chain (`bench-r10` and what it requires) and the destructive noop `test-once`, all
 * committed at once (the nodes are committed first; the deployment's commit starts it). With 20 nodes that is 220 noderoles, 20 of them destructive.
 */
export async function prepareAnneal(s: Stack, deployment: string, nodes: number) {
  const ok = (r: { status: number; body: unknown }, what: string) => {
    if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as any;
  };
  ok(await s.call('POST', '/deployments', { name: deployment }), 'deployment');
  for (let i = 0; i < nodes; i++) {
    const n = ok(
      await s.call('POST', '/nodes', { name: `n${i}.${deployment}.crowbar.test`, alive: true, deployment }),
      'node',
    );
    for (const role of ['bench-r10', 'test-once'])
      ok(await s.call('POST', '/node_roles', { node: n.id, role, deployment }), role);
    ok(await s.call('PUT', `/nodes/${n.id}/commit`), 'node commit');
  }
  return { total: nodes * 11, destructive: nodes };
}

export interface AnnealOutcome {
  states: Record<string, number>;
  /** ERROR noderoles without a run log saying why. */
  errorsWithoutReason: number;
  /** Destructive noderoles that ran more than once. */
  destructiveTwice: number;
}

/** Waits until no noderole of the deployment is waiting or running, then counts what happened. */
export async function annealOutcome(
  databaseUrl: string,
  deployment: string,
  ms: number,
): Promise<AnnealOutcome> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const where = `from inventory.noderoles nr join inventory.deployments d on d.id = nr.deployment_id
      join inventory.roles r on r.id = nr.role_id where d.name = $1`;
    await until(
      `every noderole of ${deployment} ACTIVE or ERROR`,
      async () =>
        (
          await db.query(`select count(*)::int n ${where} and nr.state not in ('active', 'error')`, [
            deployment,
          ])
        ).rows[0].n === 0,
      ms,
      250,
    );
    const states = Object.fromEntries(
      (await db.query(`select nr.state, count(*)::int n ${where} group by nr.state`, [deployment])).rows.map(
        (r) => [r.state, r.n],
      ),
    );
    const errorsWithoutReason = (
      await db.query(
        `select count(*)::int n ${where} and nr.state = 'error' and coalesce(nr.runlog, '') = ''`,
        [deployment],
      )
    ).rows[0].n;
    const destructiveTwice = (
      await db.query(
        `select count(*)::int n ${where} and 'destructive' = any(r.flags) and nr.run_count > 1`,
        [deployment],
      )
    ).rows[0].n;
    return { states, errorsWithoutReason, destructiveTwice };
  } finally {
    await db.end();
  }
}

/**
 * Operator writes (`POST /nodes`) issued every `everyMs` until stopped: which were answered 2xx, so a test
 * can check that each of those was committed.
 */
export function writeLoop(s: Stack, tag: string, everyMs = 100) {
  const acked: string[] = [];
  let n = 0;
  let stop = false;
  const done = (async () => {
    while (!stop && n < 2000) {
      const name = `w${n++}.${tag}.crowbar.test`;
      const r = await s.call('POST', '/nodes', { name }).catch(() => ({ status: 0, body: null }));
      if (r.status >= 200 && r.status < 300) acked.push(name);
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    acked,
    attempts: () => n,
    async stop() {
      stop = true;
      await done;
    },
  };
}

/** Names among `names` that are not in inventory's nodes table. */
export async function missingNodes(databaseUrl: string, names: string[]): Promise<string[]> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const have = new Set(
      (await db.query('select name from inventory.nodes where name = any($1)', [names])).rows.map(
        (r) => r.name,
      ),
    );
    return names.filter((n) => !have.has(n));
  } finally {
    await db.end();
  }
}

/**
 * One line for `npm run bench -- faults` (bench/faults.ts reads it from the test's output): the fault,
 * what the anneal came to, writes answered 2xx but missing (lost), destructive runs twice (duplicated).
 */
export function reportFault(
  fault: string,
  outcome: AnnealOutcome,
  writes: { attempts: number; acked: number; missing: number },
) {
  console.log(
    `FAULT ${JSON.stringify({ fault, ...outcome, writes: writes.attempts, acked: writes.acked, lost: writes.missing, duplicated: outcome.destructiveTwice })}`,
  );
}
