import { eq, sql } from 'drizzle-orm';
import type { NodeSummary } from '../../../shared/catalogue/index.js';
import type { Q } from './network-store.js';
import { deletedNodes, nodes } from './schema.js';

/**
 * The projection of inventory's nodes: only what allocation needs (name for md5, admin for ranges,
 * address hints).
 */
export type NodeRow = typeof nodes.$inferSelect;

/**
 * Upsert by node id, so a redelivered or out-of-order event converges on the newest state; a node
 * already deleted stays deleted.
 */
export async function upsertNode(
  q: Q,
  n: Pick<NodeSummary, 'id' | 'name' | 'admin' | 'deploymentId'> & Partial<Pick<NodeSummary, 'addressHints'>>,
  /** When the event was made (or the question asked): node events are consumed in parallel, so an older one may arrive last. */
  seenAt: Date,
) {
  await q.execute(sql`
    insert into network_ipam.nodes (id, name, admin, deployment_id, address_hints, seen_at)
    select ${n.id}, ${n.name}, ${n.admin}, ${n.deploymentId}, ${JSON.stringify(n.addressHints ?? {})}::jsonb,
           ${seenAt.toISOString()}::timestamptz
    where not exists (select 1 from network_ipam.deleted_nodes d where d.id = ${n.id})
    on conflict (id) do update set name = excluded.name, admin = excluded.admin,
      deployment_id = excluded.deployment_id, address_hints = excluded.address_hints,
      seen_at = excluded.seen_at, updated_at = now()
    where nodes.seen_at is null or nodes.seen_at <= excluded.seen_at`);
}

/** Removes a node and remembers that it is gone, so a late event for it changes nothing. */
export async function deleteNode(q: Q, id: number) {
  await q.delete(nodes).where(eq(nodes.id, id));
  await q.insert(deletedNodes).values({ id }).onConflictDoNothing();
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
