import { sql } from 'drizzle-orm';
import type { AllocationSummary, NetworkDetail, NodeSummary } from '../../../shared/catalogue/index.js';
import type { Database, Db } from '../../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry } from '../../../shared/db/outbox.js';
import { queryText } from '../../../shared/db/prepared.js';
import { outbox } from './schema.js';

/** Every query dhcp-db makes. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
type Q = Db | Tx;

/** Other instances reload their served view when a projection write names this channel. */
export const projectionChannel = 'dhcp_db_projection';
export const outboxChannel = 'dhcp_db_outbox';

/** Projection writes are serialised by one advisory lock and announced to every instance. */
export function writeProjection<T>(database: Database, instance: string, fn: (tx: Tx) => Promise<T>) {
  return database.db.transaction(async (tx) => {
    await tx.execute(
      sql`select pg_advisory_xact_lock(hashtext('dhcp_db.projection')), pg_notify(${projectionChannel}, ${instance})`,
    );
    return fn(tx);
  });
}

type Kind = 'nodes' | 'allocations' | 'networks';
const column: Record<Kind, string> = { nodes: 'summary', allocations: 'summary', networks: 'detail' };

/** Stores one owner row unless newer state is already stored; true when it was applied. */
export async function putRow(
  tx: Q,
  kind: Kind,
  row: { id: number; body: NodeSummary | AllocationSummary | NetworkDetail; nodeId?: number },
  time: Date,
  deleted: boolean,
): Promise<boolean> {
  const c = column[kind];
  const extra = kind === 'allocations' ? ', node_id' : '';
  const extraValue = kind === 'allocations' ? ', $5' : '';
  const values: unknown[] = [row.id, JSON.stringify(row.body), deleted, time.toISOString()];
  if (kind === 'allocations') values.push(row.nodeId);
  const rows = await queryText<{ id: number }>(
    tx,
    `insert into dhcp_db.${kind} (id, ${c}, deleted, source_time${extra}) values ($1, $2::jsonb, $3, $4${extraValue})
     on conflict (id) do update set ${c} = excluded.${c}, deleted = excluded.deleted, source_time = excluded.source_time${
       kind === 'allocations' ? ', node_id = excluded.node_id' : ''
     }
     where dhcp_db.${kind}.source_time <= excluded.source_time returning id`,
    values,
  );
  return rows.length > 0;
}

/** Re-sync: rows not in the owner's list as of `time` become tombstones (unless written later). */
export async function tombstoneExcept(tx: Q, kind: Kind, ids: number[], time: Date): Promise<number> {
  const rows = await queryText<{ id: number }>(
    tx,
    `update dhcp_db.${kind} set deleted = true, source_time = $2
     where not deleted and source_time <= $2 and not (id = any($1::int[])) returning id`,
    [ids, time.toISOString()],
  );
  return rows.length;
}

export interface ProjectionRows {
  nodes: NodeSummary[];
  allocations: AllocationSummary[];
  networks: NetworkDetail[];
}

export async function loadProjection(db: Q): Promise<ProjectionRows> {
  const [n, a, w] = await Promise.all([
    queryText<{ b: NodeSummary }>(db, 'select summary as b from dhcp_db.nodes where not deleted', []),
    queryText<{ b: AllocationSummary }>(
      db,
      'select summary as b from dhcp_db.allocations where not deleted',
      [],
    ),
    queryText<{ b: NetworkDetail }>(db, 'select detail as b from dhcp_db.networks where not deleted', []),
  ]);
  return { nodes: n.map((r) => r.b), allocations: a.map((r) => r.b), networks: w.map((r) => r.b) };
}

/* ---------------- leases ---------------- */

export type LeaseState = 'bound' | 'released' | 'expired' | 'declined';
export interface LeaseRow {
  address: string;
  mac: string;
  networkId: number;
  range: string;
  nodeId: number | null;
  hostname: string | null;
  state: LeaseState;
  expiresAt: string;
  iface: string | null;
  relay: string | null;
  updatedAt: string;
}
/** The lease columns as LeaseRow names, for a table aliased `l`. */
const leaseColumns = `host(l.address) as address, l.mac, l.network_id as "networkId", l.range, l.node_id as "nodeId",
  l.hostname, l.state, l.expires_at as "expiresAt", l.interface as iface, l.relay, l.updated_at as "updatedAt"`;

/** Leases that still hold their address (bound or quarantined), for the in-memory table at start. */
export function loadActiveLeases(db: Q): Promise<LeaseRow[]> {
  return queryText<LeaseRow>(
    db,
    `select ${leaseColumns} from dhcp_db.leases l where state in ('bound', 'declined') and expires_at > now()`,
    [],
  );
}

export function getLease(db: Q, address: string): Promise<LeaseRow | undefined> {
  return queryText<LeaseRow>(db, `select ${leaseColumns} from dhcp_db.leases l where address = $1::inet`, [
    address,
  ]).then((r) => r[0]);
}

export interface LeaseWrite {
  address: string;
  mac: string;
  networkId: number;
  range: string;
  nodeId: number | null;
  hostname: string | null;
  expiresAt: Date;
  iface: string | null;
  relay: string | null;
}

/**
 * Binds many leases in one statement (group commit). An address is taken only if it is free in the
 * database: never bound to another MAC unless that lease has ended, never while quarantined. `release`
 * names other addresses the same MACs gave up (they moved), released in the same transaction; the
 * outbox gets `events(bound, released)`. Returns the addresses that were bound. Every statement is a
 * key lookup per row, whatever the table's statistics say.
 */
export async function bindLeases(
  database: Database,
  items: LeaseWrite[],
  release: { address: string; mac: string }[],
  events: (bound: LeaseRow[], released: LeaseRow[]) => OutboxEntry[],
): Promise<Set<string>> {
  return database.db.transaction(async (tx) => {
    const rows = await queryText<LeaseRow>(
      tx,
      `insert into dhcp_db.leases as l (address, mac, network_id, range, node_id, hostname, state, expires_at,
                                        interface, relay, updated_at)
       select address, mac, network_id, range, node_id, hostname, 'bound', expires_at, interface, relay, now()
       from unnest($1::inet[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[], $7::timestamptz[],
                   $8::text[], $9::text[])
         as u(address, mac, network_id, range, node_id, hostname, expires_at, interface, relay)
       on conflict (address) do update set mac = excluded.mac, network_id = excluded.network_id,
         range = excluded.range, node_id = excluded.node_id, hostname = excluded.hostname, state = 'bound',
         expires_at = excluded.expires_at, interface = excluded.interface, relay = excluded.relay,
         updated_at = now()
       where (l.mac = excluded.mac and l.state <> 'declined') or l.expires_at <= now()
          or l.state in ('released', 'expired')
       returning ${leaseColumns}`,
      [
        items.map((i) => i.address),
        items.map((i) => i.mac),
        items.map((i) => i.networkId),
        items.map((i) => i.range),
        items.map((i) => i.nodeId),
        items.map((i) => i.hostname),
        items.map((i) => i.expiresAt.toISOString()),
        items.map((i) => i.iface),
        items.map((i) => i.relay),
      ],
    );
    const boundMacs = new Set(rows.map((r) => r.mac));
    const moved = release.filter((r) => boundMacs.has(r.mac));
    const released = moved.length
      ? await queryText<LeaseRow>(
          tx,
          `update dhcp_db.leases l set state = 'released', expires_at = now(), updated_at = now()
           from unnest($1::inet[], $2::text[]) as u(address, mac)
           where l.address = u.address and l.mac = u.mac and l.state = 'bound'
           returning ${leaseColumns}`,
          [moved.map((r) => r.address), moved.map((r) => r.mac)],
        )
      : [];
    const entries = events(rows, released);
    if (entries.length) await enqueueOutbox(tx, outbox, entries);
    return new Set(rows.map((r) => r.address));
  });
}

/**
 * Ends a lease held by `mac` (or by anyone when `mac` is null: the operator's release): released,
 * expired, or declined with a quarantine until `until`. Returns the row as it now is, or undefined when
 * that MAC held no such lease.
 */
export async function endLease(
  database: Database,
  change: { address: string; mac: string | null; state: 'released' | 'declined' | 'expired'; until: Date },
  events: (row: LeaseRow) => OutboxEntry[],
): Promise<LeaseRow | undefined> {
  return database.db.transaction(async (tx) => {
    const rows = await queryText<LeaseRow>(
      tx,
      `update dhcp_db.leases l set state = $3, expires_at = $4, updated_at = now()
       where address = $1::inet and ($2::text is null or mac = $2) and state = 'bound'
       returning ${leaseColumns}`,
      [change.address, change.mac, change.state, change.until.toISOString()],
    );
    const row = rows[0];
    if (row) {
      const entries = events(row);
      if (entries.length) await enqueueOutbox(tx, outbox, entries, outboxChannel);
    }
    return row;
  });
}

/** Bound leases past their end become expired (up to `limit` per call), with their events. */
export async function expireDue(
  database: Database,
  limit: number,
  events: (rows: LeaseRow[]) => OutboxEntry[],
): Promise<LeaseRow[]> {
  return database.db.transaction(async (tx) => {
    const rows = await queryText<LeaseRow>(
      tx,
      `update dhcp_db.leases l set state = 'expired', updated_at = now()
       where address in (select address from dhcp_db.leases where state = 'bound' and expires_at <= now()
                         order by expires_at limit $1 for update skip locked)
       returning ${leaseColumns}`,
      [limit],
    );
    const entries = events(rows);
    if (entries.length) await enqueueOutbox(tx, outbox, entries, outboxChannel);
    return rows;
  });
}

export function listLeases(
  db: Q,
  f: { state?: LeaseState; mac?: string; networkId?: number; nodeId?: number; after?: string; limit: number },
): Promise<LeaseRow[]> {
  return queryText<LeaseRow>(
    db,
    `select ${leaseColumns} from dhcp_db.leases l
     where ($1::text is null or state = $1) and ($2::text is null or mac = $2)
       and ($3::int is null or network_id = $3) and ($4::int is null or node_id = $4)
       and ($5::inet is null or address > $5::inet)
     order by address limit $6`,
    [f.state ?? null, f.mac ?? null, f.networkId ?? null, f.nodeId ?? null, f.after ?? null, f.limit],
  );
}
