import { sql } from 'drizzle-orm';
import type { Envelope } from '../../../shared/bus/envelope.js';
import type { Family } from '../domain/address.js';
import type { NetworkRow, Q, RangeRow } from './network-store.js';
import type { NodeRow } from './node-store.js';

/**
 * The allocation hot path in as few round trips as possible: one read gathers the node, the network,
 * its ranges, the node's existing allocations and its admin addresses; then each range is claimed by one
 * self-contained statement (pick + take from pool + insert + outbox row + role task), so the allocation
 * and its event commit together and the database referees every race.
 */

export interface AllocationContext {
  node: NodeRow | null;
  network: NetworkRow | null;
  ranges: RangeRow[];
  existing: { id: number; rangeId: number; address: string }[];
  /** The node's addresses on admin-category networks of this network's group (host-part alignment). */
  admin: { family: Family; address: string; prefix: number }[];
}

type Json = Record<string, unknown>;
const networkOfJson = (j: Json): NetworkRow => ({
  id: j.id as number,
  name: j.name as string,
  description: j.description as string,
  deploymentId: j.deployment_id as number,
  category: j.category as string,
  group: j.group_name as string,
  conduit: j.conduit as string,
  vlan: j.vlan as number,
  useVlan: j.use_vlan as boolean,
  teamMode: j.team_mode as number,
  useTeam: j.use_team as boolean,
  useBridge: j.use_bridge as boolean,
  configure: j.configure as boolean,
  pbr: j.pbr as string | null,
  v6prefix: j.v6prefix as string | null,
  v6Auto: j.v6_auto as boolean,
  order: j.sort_order as number,
  roleDefined: j.role_defined as boolean,
  createdAt: new Date(j.created_at as string),
  updatedAt: new Date(j.updated_at as string),
});
const rangeOfJson = (j: Json): RangeRow => ({
  id: j.id as number,
  networkId: j.network_id as number,
  name: j.name as string,
  family: j.family as string,
  first: j.first as string,
  last: j.last as string,
  prefix: j.prefix as number,
  overlap: j.overlap as boolean,
  conduit: j.conduit as string | null,
  vlan: j.vlan as number | null,
  useVlan: j.use_vlan as boolean | null,
  useBridge: j.use_bridge as boolean | null,
  teamMode: j.team_mode as number | null,
  useTeam: j.use_team as boolean | null,
  allowAnonLeases: j.allow_anon_leases as boolean,
  allowBoundLeases: j.allow_bound_leases as boolean,
  anonLeaseTime: j.anon_lease_time as number,
  boundLeaseTime: j.bound_lease_time as number,
  pooled: j.pooled as boolean,
  createdAt: new Date(j.created_at as string),
  updatedAt: new Date(j.updated_at as string),
});

/**
 * Hot-path statements are static text run as named prepared statements: planning these CTEs cost more
 * than executing them (≈6–11 ms vs <1 ms on a loaded machine), so each connection plans them once.
 */
export interface Runner {
  query<R extends Record<string, unknown>>(q: {
    name: string;
    text: string;
    values: unknown[];
  }): Promise<{ rows: R[] }>;
}

const contextText = (nodeCol: 'id' | 'name', netCol: 'id' | 'name') => `
    with n as (select * from network_ipam.nodes x where x.${nodeCol} = $1 order by x.id limit 1),
         net as (select * from network_ipam.networks y where y.${netCol} = $2)
    select (select row_to_json(n) from n) as node,
           (select row_to_json(net) from net) as network,
           (select json_agg(r order by r.id) from network_ipam.ranges r where r.network_id = (select id from net)) as ranges,
           (select json_agg(json_build_object('id', a.id, 'rangeId', a.range_id, 'address', host(a.address)))
              from network_ipam.allocations a
             where a.node_id = (select id from n) and a.network_id = (select id from net)) as existing,
           (select json_agg(json_build_object('family', a.family, 'address', host(a.address), 'prefix', r.prefix)
                            order by o.id, a.id)
              from network_ipam.allocations a
              join network_ipam.ranges r on r.id = a.range_id
              join network_ipam.networks o on o.id = a.network_id
             where a.node_id = (select id from n) and o.category = 'admin'
               and o.group_name = (select group_name from net) and o.id <> (select id from net)) as admin`;

const isId = (ref: number | string) => typeof ref === 'number' || /^\d{1,9}$/.test(ref);

export async function loadContext(
  q: Runner,
  nodeRef: number | string,
  networkRef: number | string,
): Promise<AllocationContext> {
  const nodeCol = isId(nodeRef) ? 'id' : 'name';
  const netCol = isId(networkRef) ? 'id' : 'name';
  const res = await q.query<{
    node: Json | null;
    network: Json | null;
    ranges: Json[] | null;
    existing: Json[] | null;
    admin: Json[] | null;
  }>({
    name: `ipam-context-${nodeCol}-${netCol}`,
    text: contextText(nodeCol, netCol),
    values: [nodeCol === 'id' ? Number(nodeRef) : nodeRef, netCol === 'id' ? Number(networkRef) : networkRef],
  });
  const row = res.rows[0]!;
  return {
    node: row.node
      ? {
          id: row.node.id as number,
          name: row.node.name as string,
          admin: row.node.admin as boolean,
          deploymentId: row.node.deployment_id as number,
          addressHints: (row.node.address_hints ?? {}) as Record<string, string>,
          seenAt: row.node.seen_at ? new Date(row.node.seen_at as string) : null,
          updatedAt: new Date(row.node.updated_at as string),
        }
      : null,
    network: row.network ? networkOfJson(row.network) : null,
    ranges: (row.ranges ?? []).map(rangeOfJson),
    existing: (row.existing ?? []) as AllocationContext['existing'],
    admin: (row.admin ?? []) as AllocationContext['admin'],
  };
}

export interface ClaimRequest {
  range: RangeRow;
  nodeId: number;
  networkId: number;
  /** Preferred addresses in order (suggestion, aligned); the pool's lowest comes after them. */
  preferred: string[];
  /** When false only `preferred` is tried (non-pooled ranges pass one candidate at a time). */
  lowest: boolean;
  /** The allocation.created envelope with placeholder id and address, filled in by the statement. */
  envelope: Envelope;
  subject: string;
  /** Role to bind (queued as a role task with the allocation), or null. */
  bindRole: string | null;
}

export interface ClaimResult {
  /** The new allocation, when the statement inserted one. */
  inserted: { id: number; address: string } | null;
  /** The address the statement took from the pool (whether or not it could insert it). */
  picked: string | null;
}

const announce = (ins: string) => `
    ev as (insert into network_ipam.outbox (subject, envelope)
           select $8::text,
                  jsonb_set(jsonb_set($9::jsonb, '{data,allocation,id}', to_jsonb(${ins}.id)),
                            '{data,allocation,address}', to_jsonb(host(${ins}.address) || '/' || $10::int))
             from ${ins}),
    rt as (insert into network_ipam.role_tasks (kind, role, node_id)
           select 'bind', $11::text, $5::int from ${ins} where $11::text is not null
           on conflict (kind, role, node_id) do update set next_at = now(), attempts = 0)
    select ins.id, host(ins.address) as address from ins
    union all
    select null, host(del.address) from del where not exists (select 1 from ins)`;

const insert = `
    ins as (insert into network_ipam.allocations (node_id, network_id, range_id, family, address)
            select $5::int, $6::int, $1::int, $7::text, address from del
            on conflict do nothing returning id, address),`;

/** Pooled ranges: the first free of (suggestion, aligned), else the lowest free, skipping locked rows. */
const claimPooled = `
    with c0 as (select address from network_ipam.free_addresses
                 where range_id = $1::int and address = $2::inet for update skip locked),
      c1 as (select address from network_ipam.free_addresses
              where range_id = $1::int and address = $3::inet and not exists (select 1 from c0)
              for update skip locked),
      c2 as (select address from network_ipam.free_addresses
              where $4::boolean and range_id = $1::int and not exists (select 1 from c0) and not exists (select 1 from c1)
              order by address limit 1 for update skip locked),
      pick as (select address from c0 union all select address from c1 union all select address from c2 limit 1),
      del as (delete from network_ipam.free_addresses f using pick
               where f.range_id = $1::int and f.address = pick.address returning f.address),
    ${insert}
    ${announce('ins')}`;

/**
 * Ranges without a pool: exactly one candidate, which must still lie in the range as it is now; the
 * unique address index referees. Runs after the range's shared fence lock (see `claim`).
 */
const claimSingle = `
    with del as (select $2::inet as address from network_ipam.ranges r
                  where r.id = $1::int and $2::inet between r.first and r.last
                    and $3::inet is null and $4::boolean is not null),
    ${insert}
    ${announce('ins')}`;

/** Key of the advisory lock that fences claims on a range against its change or removal. */
export const fenceKey = "hashtext('network_ipam:range')";

export interface ClaimPool extends Runner {
  connect(): Promise<Runner & { release(err?: Error | boolean): void }>;
}

/** One statement: choose, take, insert, announce. Nothing is written unless the insert happens. */
export async function claim(pool: ClaimPool, c: ClaimRequest): Promise<ClaimResult> {
  const r = c.range;
  if (r.pooled) return claimWith(pool, c, 'ipam-claim-pooled', claimPooled);
  // No pool rows to fence this claim: hold the range's shared lock, taken before the claim's snapshot.
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query({ name: 'ipam-begin', text: 'begin', values: [] });
    await client.query({
      name: 'ipam-fence-shared',
      text: `select pg_advisory_xact_lock_shared(${fenceKey}, $1::int)`,
      values: [r.id],
    });
    const out = await claimWith(client, c, 'ipam-claim-single', claimSingle);
    await client.query({ name: 'ipam-commit', text: 'commit', values: [] });
    return out;
  } catch (err) {
    await client.query({ name: 'ipam-rollback', text: 'rollback', values: [] }).catch((e: Error) => {
      broken = e;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

async function claimWith(q: Runner, c: ClaimRequest, name: string, text: string): Promise<ClaimResult> {
  const r = c.range;
  const [p0 = null, p1 = null] = c.preferred;
  const res = await q.query<{ id: number | null; address: string }>({
    name,
    text,
    values: [
      r.id,
      p0,
      r.pooled ? p1 : null,
      c.lowest,
      c.nodeId,
      c.networkId,
      r.family,
      c.subject,
      JSON.stringify(c.envelope),
      r.prefix,
      c.bindRole,
    ],
  });
  const row = res.rows[0];
  if (!row) return { inserted: null, picked: null };
  if (row.id === null) return { inserted: null, picked: row.address };
  return { inserted: { id: row.id, address: row.address }, picked: row.address };
}

/** Puts an address taken from the pool back when the insert lost a race for the same node. */
export async function returnToPool(q: Q, rangeId: number, address: string) {
  await q.execute(sql`
    insert into network_ipam.free_addresses (range_id, address)
    select ${rangeId}, ${address}::inet
     where not exists (select 1 from network_ipam.allocations where address = ${address}::inet)
    on conflict do nothing`);
}

export async function existingFor(q: Q, rangeId: number, nodeId: number) {
  const res = await q.execute<{ id: number; address: string }>(sql`
    select id, host(address) as address from network_ipam.allocations where range_id = ${rangeId} and node_id = ${nodeId}`);
  return res.rows[0] ?? null;
}
