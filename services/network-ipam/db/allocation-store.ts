import { sql } from 'drizzle-orm';
import type { AllocationSummary } from '../../../shared/catalogue/index.js';
import { type Family, formatCidr } from '../domain/address.js';
import { cidrOf, type Q, type RangeRow } from './network-store.js';

/**
 * Reading, releasing and pooling allocations (claiming lives in claim.ts). Uniqueness is the database's
 * job: a unique address index across the installation and one allocation per node per range.
 */

/** Ranges up to this many addresses keep a materialised free pool; bigger ones use a gap search. */
export const poolLimit = 65_536;

interface Row extends Record<string, unknown> {
  id: number;
  node_id: number;
  node: string;
  network_id: number;
  network: string;
  category: string;
  range: string;
  range_id: number;
  address: string;
  prefix: number;
  family: string;
}

const select = sql`
  select a.id, a.node_id, coalesce(n.name, 'node-' || a.node_id) as node, a.network_id, net.name as network,
         net.category, r.name as range, a.range_id, host(a.address) as address, r.prefix, a.family
    from network_ipam.allocations a
    join network_ipam.ranges r on r.id = a.range_id
    join network_ipam.networks net on net.id = a.network_id
    left join network_ipam.nodes n on n.id = a.node_id`;

function toSummary(r: Row): AllocationSummary {
  return {
    id: r.id,
    nodeId: r.node_id,
    node: r.node,
    networkId: r.network_id,
    network: r.network,
    category: r.category as AllocationSummary['category'],
    range: r.range,
    address: formatCidr(cidrOf(r.address, r.prefix)),
    family: r.family as Family,
  };
}

async function many(q: Q, where: ReturnType<typeof sql>) {
  const res = await q.execute<Row>(sql`${select} where ${where} order by a.id`);
  return res.rows.map(toSummary);
}

export async function allocationById(q: Q, id: number) {
  const [a] = await many(q, sql`a.id = ${id}`);
  return a ?? null;
}

export async function findAllocations(
  q: Q,
  f: {
    nodeIds?: number[] | undefined;
    networkId?: number | undefined;
    category?: string | undefined;
    afterId?: number | undefined;
    limit?: number | undefined;
  },
) {
  const conds = [sql`true`];
  if (f.nodeIds)
    conds.push(
      f.nodeIds.length === 0
        ? sql`false`
        : sql`a.node_id in (${sql.join(
            f.nodeIds.map((i) => sql`${i}`),
            sql`, `,
          )})`,
    );
  if (f.networkId !== undefined) conds.push(sql`a.network_id = ${f.networkId}`);
  if (f.category !== undefined) conds.push(sql`net.category = ${f.category}`);
  if (f.afterId !== undefined) conds.push(sql`a.id > ${f.afterId}`);
  const where = sql.join(conds, sql` and `);
  const res = await q.execute<Row>(
    sql`${select} where ${where} order by a.id ${f.limit ? sql`limit ${f.limit}` : sql``}`,
  );
  return res.rows.map(toSummary);
}

/** Lowest unallocated address of a range without a pool: `first`, or one past an allocation, with no holder. */
export async function lowestGap(q: Q, range: RangeRow): Promise<string | null> {
  const res = await q.execute<{ address: string }>(sql`
    select host(c) as address from (
      select ${range.first}::inet as c
      union all
      select a.address + 1 from network_ipam.allocations a
       where a.address >= ${range.first}::inet and a.address < ${range.last}::inet
    ) cands
    where c <= ${range.last}::inet
      and not exists (select 1 from network_ipam.allocations b where b.address = cands.c)
    order by c limit 1`);
  return res.rows[0]?.address ?? null;
}

/** Deletes an allocation and gives its address back to its range's pool. */
export async function deleteAllocation(q: Q, id: number): Promise<boolean> {
  const res = await q.execute<{ range_id: number; address: string }>(sql`
    delete from network_ipam.allocations where id = ${id} returning range_id, host(address) as address`);
  const row = res.rows[0];
  if (!row) return false;
  await q.execute(sql`
    insert into network_ipam.free_addresses (range_id, address)
    select r.id, ${row.address}::inet from network_ipam.ranges r
     where r.id = ${row.range_id} and r.pooled
       and ${row.address}::inet between r.first and r.last
    on conflict do nothing`);
  return true;
}

/** (Re)builds a range's free pool: every address from first to last that nobody holds. */
export async function fillPool(q: Q, range: RangeRow): Promise<void> {
  await q.execute(sql`delete from network_ipam.free_addresses where range_id = ${range.id}`);
  if (!range.pooled) return;
  await q.execute(sql`
    insert into network_ipam.free_addresses (range_id, address)
    select ${range.id}, ${range.first}::inet + g
      from generate_series(0::bigint, (${range.last}::inet - ${range.first}::inet)) g
     where not exists (select 1 from network_ipam.allocations a where a.address = ${range.first}::inet + g)`);
}

/**
 * Fences a range before it changes or goes away: waits out in-flight claims (the exclusive fence lock for
 * unpooled ranges; deleting the pool rows, which pooled claims lock, for pooled ones). Afterwards the
 * caller sees every committed allocation of the range, and no new claim can land in it until commit.
 */
export async function fenceRange(q: Q, rangeId: number) {
  await q.execute(sql`select pg_advisory_xact_lock(hashtext('network_ipam:range'), ${rangeId}::int)`);
  await q.execute(sql`delete from network_ipam.free_addresses where range_id = ${rangeId}`);
}
