import type { PoolClient } from 'pg';
import type { Database } from '../../shared/db/database.js';
import type { Logger } from '../../shared/log.js';

const leaderKey = 'crowbar-aliveness-probe-sweeper';

/**
 * Which instance sweeps: a PostgreSQL session advisory lock, held exactly as long as its session. The
 * session is told to end after `timeoutMs` of silence (`idle_session_timeout`), so a leader that stopped
 * answering (SIGSTOP, a frozen VM) loses the lock; a running leader keeps it busy three times as often.
 */
export class SweepLock {
  leader = false;
  #client: PoolClient | null = null;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    this.#heartbeat = setInterval(() => void this.stillHeld(), Math.max(100, Math.floor(timeoutMs / 3)));
  }

  /** Takes the lock if free (or confirms it is ours); logs each change of leadership. */
  async tryTake(): Promise<boolean> {
    try {
      this.#client ??= await this.#connect();
      const r = await this.#client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
        leaderKey,
      ]);
      const ok = r.rows[0]?.ok === true;
      if (ok !== this.leader)
        this.log.info({ leader: ok }, ok ? 'this instance sweeps' : 'another instance sweeps');
      this.leader = ok;
      return ok;
    } catch (err) {
      this.#drop(err);
      this.leader = false;
      this.log.warn({ err: (err as Error).message }, 'cannot check sweep leadership');
      return false;
    }
  }

  /** True while the lock's session lives. */
  async stillHeld(): Promise<boolean> {
    if (!this.#client || !this.leader) return false;
    try {
      await this.#client.query('select 1');
      return true;
    } catch (err) {
      this.#drop(err);
      return false;
    }
  }

  async release(): Promise<void> {
    clearInterval(this.#heartbeat);
    if (!this.#client) return;
    await this.#client.query('select pg_advisory_unlock_all()').catch(() => undefined);
    this.#client.release();
    this.#client = null;
  }

  async #connect(): Promise<PoolClient> {
    const c = await this.database.pool.connect();
    c.on('error', () => undefined);
    await c
      .query(`set idle_session_timeout = ${Math.floor(this.timeoutMs)}`)
      .catch((err: unknown) =>
        this.log.warn(
          { err: (err as Error).message },
          'no idle_session_timeout (PostgreSQL < 14): a stopped leader keeps the lock',
        ),
      );
    return c;
  }

  /** The lock went with its session; `leader` is put right (and logged) by the next `tryTake`. */
  #drop(err: unknown): void {
    if (this.leader && this.#client)
      this.log.warn({ err: (err as Error).message }, 'sweep lock lost with its connection');
    this.#client?.release(true);
    this.#client = null;
  }
}
