import { randomBytes } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import type { Database } from '../../shared/db/database.js';
import { ConflictError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { ClaimPool } from './db/claim.js';
import type { Q, Tx } from './db/network-store.js';
import { roleTasks, settings } from './db/schema.js';
import { newGlobalId } from './domain/ipv6.js';
import { EventBatch } from './events.js';

/** What the operations need; built once in service.ts and passed down (no module state). */
export interface Ctx {
  database: Database;
  /** A separate, larger pool for the allocation hot path (its statements are prepared per connection). */
  claims: ClaimPool;
  bus: Bus;
  log: Logger;
  clock: Clock;
  /** Wakes the role-task worker after a transaction queued work for inventory. */
  kickRoleTasks(): void;
  /** Wakes the outbox relay after a transaction wrote events. */
  kickOutbox(): void;
}

/** Runs `fn` in a transaction with an event batch that commits with it. */
export async function inTx<T>(ctx: Ctx, fn: (tx: Tx, events: EventBatch) => Promise<T>): Promise<T> {
  let wrote = false;
  const out = await ctx.database.db.transaction(async (tx) => {
    const events = new EventBatch(ctx.bus);
    const out = await fn(tx, events);
    wrote = events.size > 0;
    await events.flush(tx);
    return out;
  });
  if (wrote) ctx.kickOutbox();
  return out;
}

/** Serialises changes to the network topology (overlap and conduit rules are check-then-write). */
export async function lockTopology(tx: Tx) {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext('network_ipam:topology'))`);
}

/** PostgreSQL error code, looking through drizzle's wrapper. */
export function pgCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 4; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Maps a unique violation to a 409 naming the rule; anything else passes through. */
export async function uniquely<T>(rule: string, message: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (pgCode(err) === '23505') throw new ConflictError(message, { rule, cause: err });
    throw err;
  }
}

/** The installation's 40-bit ULA global ID, generated once; concurrent first callers agree on one. */
export async function globalId(q: Q, random: (n: number) => Buffer = randomBytes): Promise<string> {
  await q
    .insert(settings)
    .values({ key: 'ula_global_id', value: newGlobalId(random) })
    .onConflictDoNothing();
  const [row] = await q.select().from(settings).where(eq(settings.key, 'ula_global_id'));
  return row!.value;
}

export type RoleTaskKind = 'define' | 'delete' | 'bind';

/** Queues a call to inventory; a define cancels a pending delete of the same role and vice versa. */
export async function queueRoleTask(tx: Q, kind: RoleTaskKind, role: string, nodeId = 0) {
  if (kind !== 'bind') {
    const opposite = kind === 'define' ? 'delete' : 'define';
    await tx.delete(roleTasks).where(and(eq(roleTasks.kind, opposite), eq(roleTasks.role, role)));
  }
  if (kind === 'delete')
    await tx.delete(roleTasks).where(and(eq(roleTasks.kind, 'bind'), eq(roleTasks.role, role)));
  await tx
    .insert(roleTasks)
    .values({ kind, role, nodeId })
    .onConflictDoUpdate({
      target: [roleTasks.kind, roleTasks.role, roleTasks.nodeId],
      set: { nextAt: sql`now()`, attempts: 0 },
    });
}

export const roleName = (network: string) => `network-${network}`;
