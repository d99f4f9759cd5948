import type { Bus } from '../../shared/bus/bus.js';
import { inventoryRpcs, ipamRpcs, type NodeSummary } from '../../shared/catalogue/index.js';
import type { Clock } from '../../shared/clock.js';
import { UnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { listAllAllocations } from '../../shared/owners.js';
import type { Projection } from './projection.js';

export interface ResyncResult {
  nodes: number;
  allocations: number;
  changedZones: string[];
}

/**
 * Full re-sync from the owners' state (inventory's nodes, network-ipam's allocations): at start, on
 * demand and on a slow timer, so a lost event never leaves a stale record. Owners that do not answer
 * yet are retried with backoff; the service keeps serving what it has.
 */
export function startResync(deps: {
  bus: Bus;
  projection: Projection;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}) {
  const { bus, projection, clock, log } = deps;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let inflight: Promise<ResyncResult> | null = null;
  let failures = 0;
  let last: { at: string; result: ResyncResult } | null = null;

  const fetchAll = async () => {
    const { nodes } = await bus.request(inventoryRpcs.listNodes, {}, { timeoutMs: 10_000 });
    const allocations = await listAllAllocations(bus);
    const { networks } = await bus.request(ipamRpcs.networkList, {}, { timeoutMs: 10_000 });
    return {
      nodes: nodes as NodeSummary[],
      allocations,
      subnets: networks.filter((n) => n.category !== 'unmanaged').flatMap((n) => n.subnets),
    };
  };

  const once = (): Promise<ResyncResult> => {
    inflight ??= (async () => {
      // Events stamped after this instant win over what the listing says.
      const time = clock.now();
      const { nodes, allocations, subnets } = await fetchAll();
      await projection.networkSubnets(subnets);
      const r = await projection.resync(nodes, allocations, time, {});
      const result = { nodes: nodes.length, allocations: allocations.length, changedZones: r.zones };
      last = { at: time.toISOString(), result };
      log.info(
        { ...result, tombstonedNodes: r.goneNodes, tombstonedAllocations: r.goneAllocations },
        'dns re-sync done',
      );
      return result;
    })().finally(() => {
      inflight = null;
    });
    return inflight;
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void tick(), ms);
  };
  const tick = async () => {
    try {
      await once();
      failures = 0;
      schedule(deps.intervalMs);
    } catch (err) {
      failures++;
      const retryMs = Math.min(60_000, 2000 * 2 ** Math.min(failures - 1, 5));
      log.warn(
        { err: (err as Error).message, retryInMs: retryMs },
        'dns re-sync failed (owners unavailable?); retrying',
      );
      schedule(retryMs);
    }
  };
  schedule(0);

  return {
    /** On demand (the resync RPC); throws UnavailableError when an owner does not answer. */
    async now(): Promise<ResyncResult> {
      try {
        return await once();
      } catch (err) {
        if (err instanceof UnavailableError) throw err;
        throw new UnavailableError(`re-sync failed: ${(err as Error).message}`, { cause: err });
      }
    },
    last: () => last,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inflight?.catch(() => undefined);
    },
  };
}
