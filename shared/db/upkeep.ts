import type pg from 'pg';
import type { Logger } from '../log.js';
import { statementNamesFull } from './prepared.js';

/**
 * Table upkeep where PostgreSQL's autovacuum does not run (switched off for the server, or for a table).
 * Our hot tables (outbox, run claims, noderoles) change thousands of times a minute. Without ANALYZE the
 * planner keeps plans made when a table was nearly empty (a sequential scan per key lookup), and without
 * VACUUM every index gains an entry per update that scans must step over. Each service keeps its own
 * schema's tables with autovacuum's own thresholds: ANALYZE past 50 + 10% changed rows, VACUUM past
 * 50 + 20% dead rows. Where autovacuum runs, this does nothing.
 */
export interface UpkeepAction {
  table: string;
  action: 'analyze' | 'vacuum';
}

const quote = (id: string) => `"${id.replace(/"/g, '""')}"`;

/** One pass over `schema`'s tables that autovacuum skips; returns what it did. */
export async function upkeepPass(pool: pg.Pool, schema: string): Promise<UpkeepAction[]> {
  const { rows } = await pool.query<{ table: string; live: number; dead: number; mods: number }>({
    name: 'crowbar_upkeep_tables',
    text: `select c.relname as "table", s.n_live_tup::float8 as live, s.n_dead_tup::float8 as dead,
             s.n_mod_since_analyze::float8 as mods
           from pg_stat_user_tables s join pg_class c on c.oid = s.relid
           where s.schemaname = $1 and (current_setting('autovacuum') = 'off'
             or exists (select 1 from unnest(c.reloptions) o where o ~* '^autovacuum_enabled=(false|off|no|0)$'))
           order by c.relname`,
    values: [schema],
  });
  const done: UpkeepAction[] = [];
  for (const t of rows) {
    const name = `${quote(schema)}.${quote(t.table)}`;
    if (t.dead > 50 + 0.2 * t.live) {
      // VACUUM cannot run inside a transaction; a pool query runs on its own.
      await pool.query(`vacuum (analyze) ${name}`);
      done.push({ table: t.table, action: 'vacuum' });
    } else if (t.mods > 50 + 0.1 * t.live) {
      await pool.query(`analyze ${name}`);
      done.push({ table: t.table, action: 'analyze' });
    }
  }
  return done;
}

/**
 * Runs `upkeepPass` every `intervalMs` (it acts only where autovacuum does not run), and warns once if
 * the process runs out of prepared-statement names. Failures are logged and retried next time; they
 * never reach the service.
 */
export function startUpkeep(opts: { pool: pg.Pool; schema: string; log: Logger; intervalMs?: number }): {
  stop(): Promise<void>;
} {
  const { pool, schema, log } = opts;
  let running: Promise<void> | null = null;
  let announced = false;
  let namesWarned = false;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    if (!namesWarned && statementNamesFull()) {
      namesWarned = true;
      log.warn(
        { schema },
        'prepared-statement names ran out: some query puts values in its SQL text; queries are now planned on every call',
      );
    }
    running = (async () => {
      try {
        const acts = await upkeepPass(pool, schema);
        if (acts.length > 0 && !announced) {
          announced = true;
          log.info(
            { schema },
            'autovacuum does not run here: this service analyzes and vacuums its own tables',
          );
        }
        for (const a of acts) log.debug({ schema, ...a }, 'table upkeep');
      } catch (err) {
        if (!stopped) log.warn({ err, schema }, 'table upkeep failed; trying again later');
      } finally {
        running = null;
      }
    })();
  };
  const timer = setInterval(tick, opts.intervalMs ?? 5000);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
