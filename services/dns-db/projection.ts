import type { Bus } from '../../shared/bus/bus.js';
import type { Lineage } from '../../shared/bus/envelope.js';
import {
  type AllocationSummary,
  type DnsFilter,
  dnsMessages,
  type NodeSummary,
  wireType,
} from '../../shared/catalogue/index.js';
import type { Clock } from '../../shared/clock.js';
import type { Database } from '../../shared/db/database.js';
import { enqueueOutbox } from '../../shared/db/outbox.js';
import type { Logger } from '../../shared/log.js';
import { outbox } from './db/schema.js';
import * as store from './db/store.js';
import { parseCidr, reverseZone } from './domain/names.js';
import {
  type CompiledFilter,
  compileFilter,
  type DerivedRecord,
  diffRecords,
  liveReverseZones,
  recordsFor,
  type Skipped,
} from './domain/records.js';

export interface ProjectionDeps {
  database: Database;
  bus: Bus;
  clock: Clock;
  log: Logger;
  domain: string;
  /** This instance's id: the NOTIFY payload, so it can skip reloading for its own writes. */
  instance: string;
  /** Called after a commit with what it changed (applied to the served state in memory). */
  changed: (c: Change) => void;
}

/** What one transaction did to the served records and zones. */
export interface Change {
  upsert: DerivedRecord[];
  remove: DerivedRecord[];
  /** New serials of changed zones, and zones created with their first serial. */
  serials: { zone: string; serial: number }[];
}

export const defaultFilter = {
  name: 'default',
  matcher: 'net.category == "admin"',
  priority: 50,
  template: '{{node.name}}',
  service: 'system',
};

/**
 * The write side of dns-db: nodes and allocations in, records and zone serials out. Every change runs
 * in one transaction under one lock, recomputes only what it touches, raises the serial of each zone
 * whose records changed, and queues a `dns.zone.changed` event in the outbox.
 */
export function createProjection(deps: ProjectionDeps) {
  const { database, bus, clock, log, domain } = deps;
  const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);
  // Round trips are most of a change's cost: compiled filters and the zones known to exist are kept
  // between transactions (filters are dropped on any filter write, here or announced by another instance).
  let filterCache: CompiledFilter[] | null = null;
  const knownZones = new Set<string>();

  /** Recomputes the records of the given allocations (undefined: all of them) inside `tx`. */
  async function recompute(
    tx: store.Tx,
    change: Change,
    scope: { allocationIds?: number[]; nodeIds?: number[] },
    lineage: Lineage,
    freshFilters = false,
  ) {
    let filters = freshFilters ? null : filterCache;
    if (!filters) {
      filters = (await store.listFilters(tx)).map(compileFilter);
      if (!freshFilters) filterCache = filters;
    }
    const all = scope.allocationIds === undefined && scope.nodeIds === undefined;
    const { live, nodes } = await store.liveScope(
      tx,
      all ? undefined : scope.nodeIds ? { nodeIds: scope.nodeIds } : { ids: scope.allocationIds! },
    );
    const touched = all
      ? undefined
      : [
          ...new Set([
            ...(scope.allocationIds ?? []),
            ...live.map((a) => a.id),
            ...(await ownedBy(tx, scope.nodeIds)),
          ]),
        ];
    const have = await store.storedRecords(tx, touched);
    const skipped: Skipped[] = [];
    const want = live.flatMap((a) => recordsFor(a, nodes.get(a.nodeId), filters, domain, skipped));
    for (const s of skipped) log.warn(s, 'allocation gets no name from a filter');
    // Reverse zones of every live allocation are served even when no filter names an address in them,
    // so a PTR query for such an address says NXDOMAIN rather than REFUSED.
    const missing = liveReverseZones(live).filter((z) => !knownZones.has(z));
    change.serials.push(...(await store.ensureZones(tx, missing, nowSeconds())));
    for (const z of missing) knownZones.add(z);
    const { upsert, remove, zones } = diffRecords(have, want);
    if (zones.size === 0) return [];
    await store.applyRecordDiff(tx, upsert, remove);
    const serials = await store.bumpSerials(tx, [...zones].sort(), nowSeconds());
    change.upsert.push(...upsert);
    change.remove.push(...remove);
    change.serials.push(...serials);
    await enqueueOutbox(
      tx,
      outbox,
      serials.map((z) => ({
        subject: dnsMessages.zoneChanged.subject,
        envelope: bus.envelope(wireType(dnsMessages.zoneChanged), z, lineage),
      })),
      'dns_db_outbox',
    );
    for (const z of serials)
      log.info(
        {
          zone: z.zone,
          serial: z.serial,
          upserted: upsert.length,
          removed: remove.length,
          nodes: scope.nodeIds ?? null,
          allocations: scope.allocationIds ?? null,
          correlationId: lineage.correlationId ?? null,
        },
        'zone changed',
      );
    return serials.map((z) => z.zone);
  }

  /** Allocations whose stored records belong to these nodes (a deleted node's records must go too). */
  async function ownedBy(tx: store.Tx, nodeIds: number[] | undefined): Promise<number[]> {
    if (!nodeIds?.length) return [];
    const rows = await store.allAllocationIdsOf(tx, nodeIds);
    return rows;
  }

  async function run<T>(fn: (tx: store.Tx, change: Change) => Promise<T>): Promise<T> {
    const change: Change = { upsert: [], remove: [], serials: [] };
    const out = await store.write(database, deps.instance, (tx) => fn(tx, change));
    if (change.serials.length > 0) deps.changed(change);
    return out;
  }

  return {
    /** Another instance changed something (maybe a filter): re-read filters next time. */
    invalidate() {
      filterCache = null;
    },

    /** A node event: stored unless older than what we have; then its allocations are renamed. */
    node(node: NodeSummary, time: Date, deleted: boolean, lineage: Lineage) {
      return run(async (tx, change) => {
        if (!(await store.putNode(tx, node, time, deleted))) return { applied: false, zones: [] as string[] };
        return { applied: true, zones: await recompute(tx, change, { nodeIds: [node.id] }, lineage) };
      });
    },

    allocation(a: AllocationSummary, time: Date, deleted: boolean, lineage: Lineage) {
      return run(async (tx, change) => {
        if (!(await store.putAllocation(tx, a, time, deleted)))
          return { applied: false, zones: [] as string[] };
        return { applied: true, zones: await recompute(tx, change, { allocationIds: [a.id] }, lineage) };
      });
    },

    /**
     * A network's subnets: their reverse zones are served from the moment the network exists, so a PTR
     * query for any of its addresses gets an authoritative answer. Zones outlive a deleted network.
     */
    networkSubnets(subnets: string[]) {
      const zones = subnets.flatMap((c) => {
        const p = parseCidr(c);
        // Catch-all subnets (the unmanaged network's /0) are not a zone we should claim.
        if (!p || p.prefix < (p.family === 'ipv4' ? 8 : 16)) return [];
        return [reverseZone(p.address, p.prefix)];
      });
      const missing = zones.filter((z) => !knownZones.has(z));
      if (missing.length === 0) return Promise.resolve([] as string[]);
      return run(async (_tx, change) => {
        const created = await store.ensureZones(_tx, missing, nowSeconds());
        change.serials.push(...created);
        for (const z of missing) knownZones.add(z);
        for (const z of created) log.info({ zone: z.zone, serial: z.serial }, 'reverse zone created');
        return created.map((z) => z.zone);
      });
    },

    /** Replaces the projection with the owners' state as of `time` (before it was read), then recomputes. */
    resync(nodes: NodeSummary[], allocations: AllocationSummary[], time: Date, lineage: Lineage) {
      return run(async (tx, change) => {
        await store.putAll(tx, { nodes, allocations }, time);
        const goneNodes = await store.tombstoneNodesExcept(
          tx,
          nodes.map((n) => n.id),
          time,
        );
        const goneAllocations = await store.tombstoneAllocationsExcept(
          tx,
          allocations.map((a) => a.id),
          time,
        );
        const zones = await recompute(tx, change, {}, lineage);
        return { goneNodes, goneAllocations, zones };
      });
    },

    /** Filter writes re-evaluate every allocation in the same transaction. */
    filters<T>(fn: (tx: store.Tx) => Promise<T>, lineage: Lineage) {
      return run(async (tx, change) => {
        const out = await fn(tx);
        await recompute(tx, change, {}, lineage, true);
        // Cleared while the lock is held: the next writer reads the committed filters.
        filterCache = null;
        return out;
      });
    },

    /** Once per installation: the default filter; then the domain zone exists and all is recomputed. */
    start(lineage: Lineage) {
      return run(async (tx, change) => {
        if ((await store.getMeta(tx, 'default_filter_seeded')) !== true) {
          const existing = await store.listFilters(tx);
          if (
            !existing.some(
              (f: DnsFilter) => f.name === defaultFilter.name || f.priority === defaultFilter.priority,
            )
          )
            await store.insertFilter(tx, defaultFilter);
          await store.setMeta(tx, 'default_filter_seeded', true);
          log.info({ filter: defaultFilter.name }, 'default dns name filter created');
        }
        change.serials.push(...(await store.ensureZones(tx, [domain], nowSeconds())));
        // The domain may have changed since the last run; every name is recomputed against it.
        return recompute(tx, change, {}, lineage);
      });
    },
  };
}
export type Projection = ReturnType<typeof createProjection>;
