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

export function startRoleSync(
  ctx: Pick<Ctx, 'database' | 'bus' | 'log'>,
  opts: { pollMs?: number } = {},
): RoleSync {
  const { database, bus, log } = ctx;
  const stats = { done: 0, failed: 0 };
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;

  type Task = typeof roleTasks.$inferSelect;
  const call = async (t: Task) => {
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
  };

  // Circuit breaker: while inventory does not answer, only the slow timer probes it, one pass at a
  // time, so a missing inventory costs almost nothing instead of churning every queued task.
  let pausedUntil = 0;
  let cooldownMs = 2000;
  const pass = async (): Promise<number> => {
    // Claim due tasks by pushing their lease forward; a crashed worker's claims come due again.
    const claimed = await database.db.execute<Task & Record<string, unknown>>(sql`
      update network_ipam.role_tasks set next_at = now() + interval '30 seconds'
       where id in (select id from network_ipam.role_tasks where next_at <= now()
                     order by id limit ${batch} for update skip locked)
      returning id, kind, role, node_id as "nodeId", attempts`);
    const tasks = claimed.rows;
    if (tasks.length === 0) return 0;
    const done: number[] = [];
    const failed: { t: Task; err: unknown }[] = [];
    // Once inventory does not answer, the rest of the batch backs off without asking again.
    let down: unknown = null;
    for (let i = 0; i < tasks.length; i += 10) {
      await Promise.all(
        tasks.slice(i, i + 10).map(async (t) => {
          if (down) {
            failed.push({ t, err: down });
            return;
          }
          try {
            await call(t);
            done.push(t.id);
            log.info(
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
    if (down) {
      pausedUntil = Date.now() + cooldownMs;
      log.warn({ pauseMs: cooldownMs, err: String(down) }, 'inventory not answering; role tasks paused');
      cooldownMs = Math.min(60_000, cooldownMs * 2);
    } else if (done.length) cooldownMs = 2000;
    if (done.length) await database.db.delete(roleTasks).where(inArray(roleTasks.id, done));
    // Failures are grouped by message so a down inventory costs one statement per pass, not one per task.
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
    stats.done += done.length;
    stats.failed += failed.length;
    return tasks.length;
  };

  // Kicks within a short window share one pass, so a burst of allocations costs one claim query.
  let pending: NodeJS.Timeout | null = null;
  const kick = () => {
    if (stopped || pending) return;
    pending = setTimeout(() => {
      pending = null;
      run();
    }, 50);
  };
  const run = () => {
    if (stopped || Date.now() < pausedUntil) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      // Bounded: at most 20 batches per kick; the timer picks up the rest.
      for (let i = 0; i < 20 && !stopped; i++) {
        again = false;
        let n = 0;
        try {
          n = await pass();
        } catch (err) {
          log.warn({ err }, 'role task pass failed; will retry');
          break;
        }
        if ((n < batch && !again) || Date.now() < pausedUntil) break;
      }
    })().finally(() => {
      running = null;
    });
  };

  const timer = setInterval(run, opts.pollMs ?? 2000);
  run();
  return {
    kick,
    stats,
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (pending) clearTimeout(pending);
      await running?.catch(() => undefined);
    },
  };
}
