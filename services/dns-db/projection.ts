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
 * What the projection's parts share. Round trips are most of a change's cost: compiled filters and the
 * zones known to exist are kept between transactions (filters are dropped on any filter write, here or
 * announced by another instance).
 */
interface ProjectionCtx {
  deps: ProjectionDeps;
  filterCache: CompiledFilter[] | null;
  knownZones: Set<string>;
}

/** Which allocations a recompute covers: these, these nodes', or (both omitted) all of them. */
interface Scope {
  allocationIds?: number[];
  nodeIds?: number[];
}

/**
 * The write side of dns-db: nodes and allocations in, records and zone serials out. Every change runs
 * in one transaction under one lock, recomputes only what it touches, raises the serial of each zone
 * whose records changed, and queues a `dns.zone.changed` event in the outbox.
 */
export function createProjection(deps: ProjectionDeps) {
  const ctx: ProjectionCtx = { deps, filterCache: null, knownZones: new Set() };
  return {
    /** Another instance changed something (maybe a filter): re-read filters next time. */
    invalidate() {
      ctx.filterCache = null;
    },

    /** A node event: stored unless older than what we have; then its allocations are renamed. */
    node(node: NodeSummary, time: Date, deleted: boolean, lineage: Lineage) {
      return run(ctx, async (tx, change) => {
        if (!(await store.putNode(tx, node, time, deleted))) return { applied: false, zones: [] as string[] };
        return { applied: true, zones: await recompute(ctx, tx, change, { nodeIds: [node.id] }, lineage) };
      });
    },

    allocation(a: AllocationSummary, time: Date, deleted: boolean, lineage: Lineage) {
      return run(ctx, async (tx, change) => {
        if (!(await store.putAllocation(tx, a, time, deleted)))
          return { applied: false, zones: [] as string[] };
        return { applied: true, zones: await recompute(ctx, tx, change, { allocationIds: [a.id] }, lineage) };
      });
    },

    networkSubnets: (subnets: string[]) => networkSubnets(ctx, subnets),

    /** Replaces the projection with the owners' state as of `time` (before it was read), then recomputes. */
    resync(nodes: NodeSummary[], allocations: AllocationSummary[], time: Date, lineage: Lineage) {
      return run(ctx, async (tx, change) => {
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
        const zones = await recompute(ctx, tx, change, {}, lineage);
        return { goneNodes, goneAllocations, zones };
      });
    },

    /** Filter writes re-evaluate every allocation in the same transaction. */
    filters<T>(fn: (tx: store.Tx) => Promise<T>, lineage: Lineage) {
      return run(ctx, async (tx, change) => {
        const out = await fn(tx);
        await recompute(ctx, tx, change, {}, lineage, true);
        // Cleared while the lock is held: the next writer reads the committed filters.
        ctx.filterCache = null;
        return out;
      });
    },

    /** Once per installation: the default filter; then the domain zone exists and all is recomputed. */
    start(lineage: Lineage) {
      return run(ctx, async (tx, change) => {
        await seedDefaultFilter(ctx, tx);
        change.serials.push(...(await store.ensureZones(tx, [deps.domain], nowSeconds(ctx))));
        // The domain may have changed since the last run; every name is recomputed against it.
        return recompute(ctx, tx, change, {}, lineage);
      });
    },
  };
}
export type Projection = ReturnType<typeof createProjection>;

function nowSeconds(ctx: ProjectionCtx) {
  return Math.floor(ctx.deps.clock.now().getTime() / 1000);
}

/** Runs `fn` in one write transaction; what it changed is handed to `changed` after the commit. */
async function run<T>(ctx: ProjectionCtx, fn: (tx: store.Tx, change: Change) => Promise<T>): Promise<T> {
  const change: Change = { upsert: [], remove: [], serials: [] };
  const out = await store.write(ctx.deps.database, ctx.deps.instance, (tx) => fn(tx, change));
  if (change.serials.length > 0) ctx.deps.changed(change);
  return out;
}

/** Recomputes the records of the scope's allocations inside `tx`; returns the zones whose serial rose. */
async function recompute(
  ctx: ProjectionCtx,
  tx: store.Tx,
  change: Change,
  scope: Scope,
  lineage: Lineage,
  freshFilters = false,
) {
  const { log, domain } = ctx.deps;
  const filters = await filtersFor(ctx, tx, freshFilters);
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
  const missing = liveReverseZones(live).filter((z) => !ctx.knownZones.has(z));
  change.serials.push(...(await store.ensureZones(tx, missing, nowSeconds(ctx))));
  for (const z of missing) ctx.knownZones.add(z);
  const { upsert, remove, zones } = diffRecords(have, want);
  if (zones.size === 0) return [];
  await store.applyRecordDiff(tx, upsert, remove);
  const serials = await store.bumpSerials(tx, [...zones].sort(), nowSeconds(ctx));
  change.upsert.push(...upsert);
  change.remove.push(...remove);
  change.serials.push(...serials);
  await announceZones(ctx, tx, serials, lineage, {
    upserted: upsert.length,
    removed: remove.length,
    nodes: scope.nodeIds ?? null,
    allocations: scope.allocationIds ?? null,
  });
  return serials.map((z) => z.zone);
}

/** The compiled filters: cached between transactions unless `fresh` (a filter write) asks to re-read them. */
async function filtersFor(ctx: ProjectionCtx, tx: store.Tx, fresh: boolean): Promise<CompiledFilter[]> {
  const cached = fresh ? null : ctx.filterCache;
  if (cached) return cached;
  const filters = (await store.listFilters(tx)).map(compileFilter);
  if (!fresh) ctx.filterCache = filters;
  return filters;
}

/** Allocations whose stored records belong to these nodes (a deleted node's records must go too). */
async function ownedBy(tx: store.Tx, nodeIds: number[] | undefined): Promise<number[]> {
  if (!nodeIds?.length) return [];
  const rows = await store.allAllocationIdsOf(tx, nodeIds);
  return rows;
}

/** A `dns.zone.changed` event per raised serial, queued in the outbox, and a line logged for each. */
async function announceZones(
  ctx: ProjectionCtx,
  tx: store.Tx,
  serials: { zone: string; serial: number }[],
  lineage: Lineage,
  detail: { upserted: number; removed: number; nodes: number[] | null; allocations: number[] | null },
) {
  const { bus, log } = ctx.deps;
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
      { zone: z.zone, serial: z.serial, ...detail, correlationId: lineage.correlationId ?? null },
      'zone changed',
    );
}

/**
 * A network's subnets: their reverse zones are served from the moment the network exists, so a PTR
 * query for any of its addresses gets an authoritative answer. Zones outlive a deleted network.
 */
function networkSubnets(ctx: ProjectionCtx, subnets: string[]) {
  const zones = subnets.flatMap((c) => {
    const p = parseCidr(c);
    // Catch-all subnets (the unmanaged network's /0) are not a zone we should claim.
    if (!p || p.prefix < (p.family === 'ipv4' ? 8 : 16)) return [];
    return [reverseZone(p.address, p.prefix)];
  });
  const missing = zones.filter((z) => !ctx.knownZones.has(z));
  if (missing.length === 0) return Promise.resolve([] as string[]);
  return run(ctx, async (tx, change) => {
    const created = await store.ensureZones(tx, missing, nowSeconds(ctx));
    change.serials.push(...created);
    for (const z of missing) ctx.knownZones.add(z);
    for (const z of created) ctx.deps.log.info({ zone: z.zone, serial: z.serial }, 'reverse zone created');
    return created.map((z) => z.zone);
  });
}

/** The default filter, once per installation (an operator's filter of that name or priority wins). */
async function seedDefaultFilter(ctx: ProjectionCtx, tx: store.Tx) {
  if ((await store.getMeta(tx, 'default_filter_seeded')) === true) return;
  const existing = await store.listFilters(tx);
  if (
    !existing.some((f: DnsFilter) => f.name === defaultFilter.name || f.priority === defaultFilter.priority)
  )
    await store.insertFilter(tx, defaultFilter);
  await store.setMeta(tx, 'default_filter_seeded', true);
  ctx.deps.log.info({ filter: defaultFilter.name }, 'default dns name filter created');
}
