import { eq, sql } from 'drizzle-orm';
import type { NodeSummary } from '../../../shared/catalogue/index.js';
import type { Q } from './network-store.js';
import { nodes } from './schema.js';

/** The projection of inventory's nodes: only what allocation needs (name for md5, admin for ranges). */
export type NodeRow = typeof nodes.$inferSelect;

/** Upsert by node id, so a redelivered or out-of-order event converges on the same row. */
export async function upsertNode(q: Q, n: Pick<NodeSummary, 'id' | 'name' | 'admin' | 'deploymentId'>) {
  await q
    .insert(nodes)
    .values({ id: n.id, name: n.name, admin: n.admin, deploymentId: n.deploymentId })
    .onConflictDoUpdate({
      target: nodes.id,
      set: { name: n.name, admin: n.admin, deploymentId: n.deploymentId, updatedAt: sql`now()` },
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
