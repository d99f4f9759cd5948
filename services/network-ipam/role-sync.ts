import { eq, inArray, sql } from 'drizzle-orm';
import { inventoryRpcs } from '../../shared/catalogue/index.js';
import { NotFoundError, UnavailableError } from '../../shared/errors.js';
import type { Ctx } from './context.js';
import { networks, roleTasks } from './db/schema.js';

/**
 * Delivers the calls network-ipam owes inventory (define/delete network roles, bind them to nodes).
 * Tasks are rows written with the change that needs them; this worker claims due ones with a lease,
 * calls inventory, deletes what succeeded and backs off the rest. Inventory being down delays roles but
 * never blocks networks or allocations.
 */
export interface RoleSync {
  kick(): void;
  stop(): Promise<void>;
  stats: { done: number; failed: number };
}

const batch = 100;
/** A task is dropped after this many failures (logged); a later change queues it again. */
const maxAttempts = 30;

type Task = typeof roleTasks.$inferSelect;
type Deps = Pick<Ctx, 'database' | 'bus' | 'log'>;

/** The inventory call a task stands for. */
async function call({ bus, database }: Deps, t: Task): Promise<void> {
  const timeoutMs = 3000;
  if (t.kind === 'define') {
    await bus.request(
      inventoryRpcs.defineRole,
      {
        name: t.role,
        barclamp: 'network',
        description: `addresses and interfaces of network ${t.role.slice('network-'.length)}`,
        jig: 'service',
        requires: ['network-server'],
        flags: ['implicit', 'milestone'],
        owner: 'network-ipam',
      },
      { timeoutMs },
    );
    await database.db
      .update(networks)
      .set({ roleDefined: true })
      .where(eq(networks.name, t.role.slice('network-'.length)));
  } else if (t.kind === 'delete') {
    await bus.request(inventoryRpcs.deleteRole, { name: t.role }, { timeoutMs });
  } else {
    await bus.request(inventoryRpcs.bindRole, { node: t.nodeId, role: t.role }, { timeoutMs });
  }
}

/** Claims due tasks by pushing their lease forward; a crashed worker's claims come due again. */
async function claimDue({ database }: Deps): Promise<Task[]> {
  const claimed = await database.db.execute<Task & Record<string, unknown>>(sql`
    update network_ipam.role_tasks set next_at = now() + interval '30 seconds'
     where id in (select id from network_ipam.role_tasks where next_at <= now()
                   order by id limit ${batch} for update skip locked)
    returning id, kind, role, node_id as "nodeId", attempts`);
  return claimed.rows;
}

/**
 * Calls inventory for each task, ten at a time. Once inventory does not answer (`down`), the rest of
 * the batch fails without asking again.
 */
async function attempt(deps: Deps, tasks: Task[]) {
  const done: number[] = [];
  const failed: { t: Task; err: unknown }[] = [];
  let down: unknown = null;
  for (let i = 0; i < tasks.length; i += 10) {
    await Promise.all(
      tasks.slice(i, i + 10).map(async (t) => {
        if (down) {
          failed.push({ t, err: down });
          return;
        }
        try {
          await call(deps, t);
          done.push(t.id);
          deps.log.info(
            { task: t.kind, role: t.role, nodeId: t.nodeId || undefined },
            'inventory role task done',
          );
        } catch (err) {
          // Deleting a role inventory never had is done, not failed.
          if (t.kind === 'delete' && err instanceof NotFoundError) done.push(t.id);
          else failed.push({ t, err });
          if (err instanceof UnavailableError) down = err;
        }
      }),
    );
  }
  return { done, failed, down };
}

/**
 * Deletes what was done and what failed too often (logged), and backs off the rest. Failures are grouped
 * by message so a down inventory costs one statement per pass, not one per task.
 */
async function settle(
  { database, log }: Deps,
  done: number[],
  failed: { t: Task; err: unknown }[],
): Promise<void> {
  if (done.length) await database.db.delete(roleTasks).where(inArray(roleTasks.id, done));
  const dropped = failed.filter(({ t }) => t.attempts + 1 >= maxAttempts);
  for (const { t, err } of dropped)
    log.warn(
      { task: t.kind, role: t.role, nodeId: t.nodeId, err: String(err) },
      'inventory role task dropped',
    );
  if (dropped.length)
    await database.db.delete(roleTasks).where(
      inArray(
        roleTasks.id,
        dropped.map(({ t }) => t.id),
      ),
    );
  const byMessage = new Map<string, number[]>();
  for (const { t, err } of failed) {
    if (t.attempts + 1 >= maxAttempts) continue;
    const m = (err instanceof Error ? err.message : String(err)).slice(0, 500);
    byMessage.set(m, [...(byMessage.get(m) ?? []), t.id]);
  }
  for (const [message, ids] of byMessage)
    await database.db.execute(sql`
      update network_ipam.role_tasks
         set attempts = attempts + 1, last_error = ${message},
             next_at = now() + least(60000, 500 * power(2, least(attempts + 1, 10))) * (0.8 + random() * 0.4)
                               * interval '1 millisecond'
       where id in (${sql.join(
         ids.map((i) => sql`${i}`),
         sql`, `,
       )})`);
}

class RoleSyncWorker implements RoleSync {
  readonly stats = { done: 0, failed: 0 };
  #stopped = false;
  #running: Promise<void> | null = null;
  #again = false;
  #pending: NodeJS.Timeout | null = null;
  readonly #timer: NodeJS.Timeout;
  /**
   * Circuit breaker: while inventory does not answer, only the slow timer probes it, one pass at a
   * time, so a missing inventory costs almost nothing instead of churning every queued task.
   */
  #pausedUntil = 0;
  #cooldownMs = 2000;

  constructor(
    private readonly deps: Deps,
    pollMs: number,
  ) {
    this.#timer = setInterval(() => this.#run(), pollMs);
    this.#run();
  }

  /** Kicks within a short window share one pass, so a burst of allocations costs one claim query. Unbound. */
  readonly kick = (): void => {
    if (this.#stopped || this.#pending) return;
    this.#pending = setTimeout(() => {
      this.#pending = null;
      this.#run();
    }, 50);
  };

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    if (this.#pending) clearTimeout(this.#pending);
    await this.#running?.catch(() => undefined);
  }

  #run(): void {
    if (this.#stopped || Date.now() < this.#pausedUntil) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#passes().finally(() => {
      this.#running = null;
    });
  }

  /** Bounded: at most 20 batches per kick; the timer picks up the rest. */
  async #passes(): Promise<void> {
    for (let i = 0; i < 20 && !this.#stopped; i++) {
      this.#again = false;
      let n = 0;
      try {
        n = await this.#pass();
      } catch (err) {
        this.deps.log.warn({ err }, 'role task pass failed; will retry');
        break;
      }
      if ((n < batch && !this.#again) || Date.now() < this.#pausedUntil) break;
    }
  }

  async #pass(): Promise<number> {
    const tasks = await claimDue(this.deps);
    if (tasks.length === 0) return 0;
    const { done, failed, down } = await attempt(this.deps, tasks);
    if (down) {
      this.#pausedUntil = Date.now() + this.#cooldownMs;
      this.deps.log.warn(
        { pauseMs: this.#cooldownMs, err: String(down) },
        'inventory not answering; role tasks paused',
      );
      this.#cooldownMs = Math.min(60_000, this.#cooldownMs * 2);
    } else if (done.length) this.#cooldownMs = 2000;
    await settle(this.deps, done, failed);
    this.stats.done += done.length;
    this.stats.failed += failed.length;
    return tasks.length;
  }
}

export function startRoleSync(ctx: Deps, opts: { pollMs?: number } = {}): RoleSync {
  return new RoleSyncWorker(ctx, opts.pollMs ?? 2000);
}
