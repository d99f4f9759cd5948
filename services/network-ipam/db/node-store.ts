import { eq, sql } from 'drizzle-orm';
import type { NodeSummary } from '../../../shared/catalogue/index.js';
import type { Q } from './network-store.js';
import { nodes } from './schema.js';

/**
 * The projection of inventory's nodes: only what allocation needs (name for md5, admin for ranges,
 * address hints).
 */
export type NodeRow = typeof nodes.$inferSelect;

/** Upsert by node id, so a redelivered or out-of-order event converges on the newest state. */
export async function upsertNode(
  q: Q,
  n: Pick<NodeSummary, 'id' | 'name' | 'admin' | 'deploymentId'> & Partial<Pick<NodeSummary, 'addressHints'>>,
  /** When the event was made (or the question asked): node events are consumed in parallel, so an older one may arrive last. */
  seenAt: Date,
) {
  const row = {
    name: n.name,
    admin: n.admin,
    deploymentId: n.deploymentId,
    addressHints: n.addressHints ?? {},
    seenAt,
  };
  await q
    .insert(nodes)
    .values({ id: n.id, ...row })
    .onConflictDoUpdate({
      target: nodes.id,
      set: { ...row, updatedAt: sql`now()` },
      setWhere: sql`${nodes.seenAt} is null or ${nodes.seenAt} <= excluded.seen_at`,
    });
}

export async function deleteNode(q: Q, id: number) {
  await q.delete(nodes).where(eq(nodes.id, id));
}

export async function findNode(q: Q, ref: number | string): Promise<NodeRow | null> {
  const byId = typeof ref === 'number' || /^\d+$/.test(ref);
  const [row] = await q
    .select()
    .from(nodes)
    .where(byId ? eq(nodes.id, Number(ref)) : eq(nodes.name, ref))
    .limit(1);
  return row ?? null;
}
