import type { Bus } from './bus/bus.js';
import { type AllocationSummary, ipamMessages } from './catalogue/index.js';

/** Every allocation network-ipam holds, a page of 1,000 at a time (projections re-syncing from the owner). */
export async function listAllAllocations(bus: Bus): Promise<AllocationSummary[]> {
  const out: AllocationSummary[] = [];
  let afterId = 0;
  for (let page = 0; page < 10_000; page++) {
    const r = await bus.request(
      ipamMessages.listAllocations,
      { afterId, limit: 1000 },
      { timeoutMs: 10_000 },
    );
    out.push(...r.allocations);
    if (r.allocations.length < 1000) break;
    afterId = Math.max(...r.allocations.map((a) => a.id));
  }
  return out;
}
