import pg from 'pg';
import { until } from './inventory.js';
import type { Stack } from './stack.js';

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
