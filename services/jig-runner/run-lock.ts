import pg from 'pg';
import type { Logger } from '../../shared/log.js';

/**
 * Which runner holds a run: a PostgreSQL session advisory lock per run, all of a process's locks on one
 * connection of its own. The lock lives exactly as long as that connection, which is what tells a
 * stopped runner from a dead one: `kill -9` (or a crash) closes the socket and PostgreSQL frees the
 * lock at once; a runner that is only paused (SIGSTOP, a long GC, a frozen VM) keeps its connection —
 * the kernel still answers TCP — so its runs stay its own however long it is away. A machine that
 * vanishes without closing the socket is noticed by the server's TCP keepalives (about 25 s here).
 */
export interface RunLocks {
  /** Takes the run's lock if no other runner holds it; false when one does. */
  tryTake(runId: number): Promise<boolean>;
  release(runId: number): Promise<void>;
  close(): Promise<void>;
}

const keyOf = (runId: number) => `crowbar-jig-run:${runId}`;

export function createRunLocks(deps: { url: string; applicationName: string; log: Logger }): RunLocks {
  const { log } = deps;
  let client: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  const held = new Set<number>();

  const connection = (): Promise<pg.Client> => {
    if (client) return Promise.resolve(client);
    connecting ??= (async () => {
      const c = new pg.Client({
        connectionString: deps.url,
        application_name: `${deps.applicationName}-run-locks`,
        keepAlive: true,
      });
      c.on('error', (err) => {
        // Every lock went with the connection. The runs in flight go on (their scripts are on the
        // nodes already); another runner may now take them over, and the annealer's attempt count
        // makes sure only the newer attempt's result counts.
        if (held.size > 0)
          log.warn({ err: err.message, runs: [...held] }, 'run locks lost with their connection');
        held.clear();
        if (client === c) client = null;
      });
      await c.connect();
      await c.query(
        `set tcp_keepalives_idle = 10; set tcp_keepalives_interval = 5; set tcp_keepalives_count = 3`,
      );
      client = c;
      return c;
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };

  // One query at a time on the lock connection: pg queues overlapping ones itself today, but calling
  // `query` on a busy client is deprecated (pg 9 will refuse it), and jobs take and release concurrently.
  let tail: Promise<unknown> = Promise.resolve();
  const serially = <T>(f: () => Promise<T>): Promise<T> => {
    const p = tail.then(f, f);
    tail = p.catch(() => undefined);
    return p;
  };

  return {
    async tryTake(runId) {
      if (held.has(runId)) return true;
      const c = await connection();
      const r = await serially(() =>
        c.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtextextended($1, 0)) as ok', [
          keyOf(runId),
        ]),
      );
      const ok = r.rows[0]?.ok === true;
      if (ok) held.add(runId);
      return ok;
    },
    async release(runId) {
      const c = client;
      if (!held.delete(runId) || !c) return;
      await serially(() =>
        c.query('select pg_advisory_unlock(hashtextextended($1, 0))', [keyOf(runId)]),
      ).catch(() => undefined);
    },
    async close() {
      held.clear();
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
