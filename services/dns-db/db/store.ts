import { and, asc, eq, inArray, lte, or, sql } from 'drizzle-orm';
import type { AllocationSummary, DnsFilter, NodeSummary } from '../../../shared/catalogue/index.js';
import type { Database, Db } from '../../../shared/db/database.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import type { DerivedRecord } from '../domain/records.js';
import { allocations, meta, nameFilters, nodes, records, zones } from './schema.js';

/** Every query dns-db makes. Writers run inside `write`, which serialises them with one advisory lock. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export const recordsChannel = 'dns_db_records';

export async function write<T>(database: Database, instance: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return database.db.transaction(async (tx) => {
    // The lock and the notification ride on one statement: round trips are most of a change's cost.
    // Every instance reloads its served snapshot on the notification (the writer may not be answering).
    await tx.execute(
      sql`select pg_advisory_xact_lock(hashtext('dns_db.records')), pg_notify(${recordsChannel}, ${instance})`,
    );
    return fn(tx);
  });
}

/** Stores a node unless newer state is already stored; true when it was applied. */
export async function putNode(tx: Tx, node: NodeSummary, time: Date, deleted: boolean): Promise<boolean> {
  const rows = await tx
    .insert(nodes)
    .values({ id: node.id, summary: node, deleted, sourceTime: time })
    .onConflictDoUpdate({
      target: nodes.id,
      set: { summary: node, deleted, sourceTime: time },
      setWhere: lte(nodes.sourceTime, time),
    })
    .returning({ id: nodes.id });
  return rows.length > 0;
}

export async function putAllocation(
  tx: Tx,
  a: AllocationSummary,
  time: Date,
  deleted: boolean,
): Promise<boolean> {
  const rows = await tx
    .insert(allocations)
    .values({ id: a.id, nodeId: a.nodeId, summary: a, deleted, sourceTime: time })
    .onConflictDoUpdate({
      target: allocations.id,
      set: { nodeId: a.nodeId, summary: a, deleted, sourceTime: time },
      setWhere: lte(allocations.sourceTime, time),
    })
    .returning({ id: allocations.id });
  return rows.length > 0;
}

/** One array parameter (`{1,2,3}`) instead of one parameter per id, which PostgreSQL caps at 65,535. */
const pgIntArray = (ids: number[]) => `{${ids.map((n) => Math.trunc(n)).join(',')}}`;

/** Re-sync: stores the owners' state as of `time`, 500 rows per statement, never over newer rows. */
export async function putAll(
  tx: Tx,
  list: { nodes: NodeSummary[]; allocations: AllocationSummary[] },
  time: Date,
) {
  for (let i = 0; i < list.nodes.length; i += 500) {
    await tx
      .insert(nodes)
      .values(
        list.nodes.slice(i, i + 500).map((n) => ({ id: n.id, summary: n, deleted: false, sourceTime: time })),
      )
      .onConflictDoUpdate({
        target: nodes.id,
        set: { summary: sql`excluded.summary`, deleted: false, sourceTime: time },
        setWhere: lte(nodes.sourceTime, time),
      });
  }
  for (let i = 0; i < list.allocations.length; i += 500) {
    await tx
      .insert(allocations)
      .values(
        list.allocations
          .slice(i, i + 500)
          .map((a) => ({ id: a.id, nodeId: a.nodeId, summary: a, deleted: false, sourceTime: time })),
      )
      .onConflictDoUpdate({
        target: allocations.id,
        set: {
          nodeId: sql`excluded.node_id`,
          summary: sql`excluded.summary`,
          deleted: false,
          sourceTime: time,
        },
        setWhere: lte(allocations.sourceTime, time),
      });
  }
}

/** Tombstones every live node (allocation) not in `keep` whose state is older than `time` (re-sync). */
export async function tombstoneNodesExcept(tx: Tx, keep: number[], time: Date) {
  const rows = await tx
    .update(nodes)
    .set({ deleted: true, sourceTime: time })
    .where(
      and(
        eq(nodes.deleted, false),
        lte(nodes.sourceTime, time),
        sql`${nodes.id} <> all(${pgIntArray(keep)}::int[])`,
      ),
    )
    .returning({ id: nodes.id });
  return rows.length;
}
export async function tombstoneAllocationsExcept(tx: Tx, keep: number[], time: Date) {
  const rows = await tx
    .update(allocations)
    .set({ deleted: true, sourceTime: time })
    .where(
      and(
        eq(allocations.deleted, false),
        lte(allocations.sourceTime, time),
        sql`${allocations.id} <> all(${pgIntArray(keep)}::int[])`,
      ),
    )
    .returning({ id: allocations.id });
  return rows.length;
}

/** Live allocations (all, of some nodes, or by id) with their live nodes, in one round trip. */
export async function liveScope(tx: Tx, by?: { nodeIds?: number[]; ids?: number[] }) {
  const rows = await tx
    .select({ allocation: allocations.summary, node: nodes.summary })
    .from(allocations)
    .leftJoin(nodes, and(eq(nodes.id, allocations.nodeId), eq(nodes.deleted, false)))
    .where(
      and(
        eq(allocations.deleted, false),
        by?.nodeIds ? inArray(allocations.nodeId, by.nodeIds) : undefined,
        by?.ids ? inArray(allocations.id, by.ids) : undefined,
      ),
    );
  const live = rows.map((r) => r.allocation);
  const found = new Map<number, NodeSummary>();
  for (const r of rows) if (r.node) found.set(r.node.id, r.node);
  return { live, nodes: found };
}

export async function storedRecords(tx: Tx, allocationIds?: number[]): Promise<DerivedRecord[]> {
  if (allocationIds?.length === 0) return [];
  return tx
    .select()
    .from(records)
    .where(allocationIds ? inArray(records.allocationId, allocationIds) : undefined);
}

export async function applyRecordDiff(tx: Tx, upsert: DerivedRecord[], remove: DerivedRecord[]) {
  for (let i = 0; i < remove.length; i += 500) {
    const chunk = remove.slice(i, i + 500);
    await tx
      .delete(records)
      .where(
        or(
          ...chunk.map((r) =>
            and(
              eq(records.allocationId, r.allocationId),
              eq(records.filterId, r.filterId),
              eq(records.type, r.type),
            ),
          ),
        ),
      );
  }
  for (let i = 0; i < upsert.length; i += 500) {
    await tx
      .insert(records)
      .values(upsert.slice(i, i + 500))
      .onConflictDoUpdate({
        target: [records.allocationId, records.filterId, records.type],
        set: { zone: sql`excluded.zone`, name: sql`excluded.name`, data: sql`excluded.data` },
      });
  }
}

/** Raises each zone's serial to max(serial + 1, now in seconds); returns the new serials. */
export async function bumpSerials(tx: Tx, names: string[], nowSeconds: number) {
  if (names.length === 0) return [];
  return tx
    .insert(zones)
    .values(names.map((name) => ({ name, serial: nowSeconds })))
    .onConflictDoUpdate({
      target: zones.name,
      set: { serial: sql`greatest(${zones.serial} + 1, excluded.serial)`, updatedAt: sql`now()` },
    })
    .returning({ zone: zones.name, serial: zones.serial });
}

/** Creates missing zones; returns the ones it created, with their first serial. */
export async function ensureZones(tx: Tx, names: string[], nowSeconds: number) {
  if (names.length === 0) return [];
  return tx
    .insert(zones)
    .values(names.map((name) => ({ name, serial: nowSeconds })))
    .onConflictDoNothing()
    .returning({ zone: zones.name, serial: zones.serial });
}

/** What the server may serve: every zone row plus the records (the caller picks the live zones). */
export async function servingState(db: Db) {
  const recs: DerivedRecord[] = await db.select().from(records);
  const zoneRows = await db.select({ name: zones.name, serial: zones.serial }).from(zones);
  return { zones: zoneRows, records: recs };
}

/* ---- name filters ---- */

type FilterRow = typeof nameFilters.$inferSelect;
const toFilter = (r: FilterRow): DnsFilter => ({
  ...r,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

export async function listFilters(tx: Tx | Db): Promise<DnsFilter[]> {
  const rows = await tx.select().from(nameFilters).orderBy(asc(nameFilters.priority));
  return rows.map(toFilter);
}

export async function findFilter(tx: Tx | Db, ref: number | string): Promise<DnsFilter> {
  const [row] = await tx
    .select()
    .from(nameFilters)
    .where(typeof ref === 'number' ? eq(nameFilters.id, ref) : eq(nameFilters.name, ref));
  if (!row) throw new NotFoundError(`no dns name filter ${JSON.stringify(ref)}`, { field: 'filter' });
  return toFilter(row);
}

type FilterInput = Pick<DnsFilter, 'name' | 'matcher' | 'priority' | 'template' | 'service'>;

/** Refuses a second filter with the same name or priority, naming which. */
async function checkUnique(tx: Tx, f: FilterInput, exceptId: number | null) {
  const clash = await tx
    .select({ id: nameFilters.id, name: nameFilters.name, priority: nameFilters.priority })
    .from(nameFilters)
    .where(or(eq(nameFilters.name, f.name), eq(nameFilters.priority, f.priority)));
  for (const c of clash) {
    if (c.id === exceptId) continue;
    if (c.name === f.name)
      throw new ConflictError(`a dns name filter named ${f.name} exists`, {
        field: 'name',
        rule: 'unique_name',
      });
    throw new ConflictError(`dns name filter ${c.name} already has priority ${f.priority}`, {
      field: 'priority',
      rule: 'unique_priority',
    });
  }
}

export async function insertFilter(tx: Tx, f: FilterInput): Promise<DnsFilter> {
  await checkUnique(tx, f, null);
  const [row] = await tx.insert(nameFilters).values(f).returning();
  return toFilter(row!);
}

export async function updateFilterRow(tx: Tx, id: number, f: FilterInput): Promise<DnsFilter> {
  await checkUnique(tx, f, id);
  const [row] = await tx
    .update(nameFilters)
    .set({ ...f, updatedAt: sql`now()` })
    .where(eq(nameFilters.id, id))
    .returning();
  return toFilter(row!);
}

export async function deleteFilterRow(tx: Tx, id: number) {
  await tx.delete(nameFilters).where(eq(nameFilters.id, id));
}

export async function getMeta(tx: Tx, key: string): Promise<unknown> {
  const [row] = await tx.select().from(meta).where(eq(meta.key, key));
  return row?.value;
}
export async function setMeta(tx: Tx, key: string, value: unknown) {
  await tx.insert(meta).values({ key, value }).onConflictDoUpdate({ target: meta.key, set: { value } });
}

/** Ids of every allocation (live or not) of these nodes that still has records. */
export async function allAllocationIdsOf(tx: Tx, nodeIds: number[]): Promise<number[]> {
  const rows = await tx
    .select({ id: allocations.id })
    .from(allocations)
    .where(inArray(allocations.nodeId, nodeIds));
  return rows.map((r) => r.id);
}
