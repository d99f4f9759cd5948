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
  /** More to say when the anneal does not settle (e.g. the JetStream consumers' state). */
  diagnose?: () => Promise<Record<string, unknown>>;
}) {
  const { s, databaseUrl, deployment, total, writes } = opts;
  const outcome = await annealOutcome(databaseUrl, deployment, opts.settleMs ?? 180_000, async () => ({
    services: Object.fromEntries([...s.services].map(([name, h]) => [name, h.detail()])),
    ...(opts.diagnose ? await opts.diagnose() : {}),
  }));
  // The anneal can settle before the stack answers writes again (a write in flight at the fault waits up
  // to 15 s for its answer): wait for a write answered 2xx, not for the loop's luck.
  if (opts.acked)
    await until(`a write answered 2xx after ${opts.fault}`, () => writes.acked.length > 0, 90_000, 100).catch(
      (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(writes.outcomes())}`);
      },
    );
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
  const fared = JSON.stringify({
    writes: writes.outcomes(),
    nats: Object.fromEntries([...s.services].map(([name, h]) => [name, h.detail().nats])),
  });
  if (opts.acked) expect(writes.acked.length, fared).toBeGreaterThan(0);
  else expect(writes.attempts(), fared).toBeGreaterThan(0);
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

/**
 * Waits until no noderole of the deployment is waiting or running, then counts what happened. One that
 * does not settle in `ms` fails naming what is still open: the unsettled noderoles and their runs, and
 * what `diagnose` adds.
 */
export async function annealOutcome(
  databaseUrl: string,
  deployment: string,
  ms: number,
  diagnose: () => Promise<Record<string, unknown>> = async () => ({}),
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
    ).catch(async (err: Error) => {
      const open = await db.query(
        `select nr.id, nr.state, r.name as role, nr.run_count, (select json_agg(json_build_object('id', ru.id,
           'state', ru.state, 'begins', ru.begins, 'reason', ru.reason, 'created', ru.created_at,
           'dispatched', ru.dispatched_at, 'deadline', ru.deadline) order by ru.id)
           from annealer.runs ru where ru.noderole_id = nr.id) as runs
         ${where} and nr.state not in ('active', 'error') order by nr.id limit 10`,
        [deployment],
      );
      const runs = await db.query('select state, count(*)::int n from annealer.runs group by state');
      throw new Error(
        `${err.message}; open noderoles (first 10): ${JSON.stringify(open.rows)}; runs by state: ${JSON.stringify(runs.rows)}; ${JSON.stringify(await diagnose().catch((e: unknown) => ({ diagnoseFailed: String(e) })))}`,
      );
    });
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
 * can check that each of those was committed. A write without an answer in 15 s counts as status 0 and
 * the loop goes on (fetch itself would wait five minutes); `outcomes()` says how the writes fared.
 */
export function writeLoop(s: Stack, tag: string, everyMs = 100) {
  const acked: string[] = [];
  const statuses = new Map<number, number>();
  let lastFailure: unknown = null;
  let n = 0;
  let stop = false;
  const done = (async () => {
    while (!stop && n < 2000) {
      const name = `w${n++}.${tag}.crowbar.test`;
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        s.call('POST', '/nodes', { name }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer in 15 s')), 15_000);
        }),
      ])
        .catch((err: Error) => ({ status: 0, body: err.message }))
        .finally(() => clearTimeout(timer));
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status >= 200 && r.status < 300) acked.push(name);
      else lastFailure = { at: new Date().toISOString(), status: r.status, body: r.body };
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    acked,
    attempts: () => n,
    outcomes: () => ({ attempts: n, byStatus: Object.fromEntries(statuses), lastFailure }),
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
