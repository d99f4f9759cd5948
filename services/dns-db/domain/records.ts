import type { AllocationSummary, NodeSummary } from '../../../shared/catalogue/index.js';
import { type Matcher, parseMatcher, parseTemplate, type Template } from './filters.js';
import {
  compressV6,
  inZone,
  isServableName,
  normaliseName,
  parseCidr,
  reverseName,
  reverseZone,
} from './names.js';

/** A record derived from one allocation by one filter; stored in dns_db.records, keyed by its source. */
export interface DerivedRecord {
  zone: string;
  name: string;
  type: 'A' | 'AAAA' | 'PTR';
  data: string;
  allocationId: number;
  filterId: number;
}

export interface CompiledFilter {
  id: number;
  name: string;
  priority: number;
  matcher: Matcher;
  template: Template;
}

export function compileFilter(f: {
  id: number;
  name: string;
  priority: number;
  matcher: string;
  template: string;
}) {
  return { ...f, matcher: parseMatcher(f.matcher), template: parseTemplate(f.template) } as CompiledFilter;
}

export interface Skipped {
  allocationId: number;
  filter: string;
  reason: string;
}

/**
 * Where a rendered name lives: names inside the cluster domain stay as they are, a single label gets the
 * domain appended, anything else is outside what we are authoritative for and is skipped.
 */
export function placeName(rendered: string, domain: string): string | null {
  const n = normaliseName(rendered);
  if (inZone(n, domain)) return n;
  if (!n.includes('.')) return `${n}.${domain}`;
  return null;
}

/**
 * Every record one allocation yields: for each matching filter (priority order) a forward A/AAAA in the
 * cluster domain and a PTR in the network's reverse zone. All matching filters apply, so an address may
 * carry several names (reference §6.7). A deleted or unknown node yields nothing.
 */
export function recordsFor(
  allocation: AllocationSummary,
  node: NodeSummary | undefined,
  filters: readonly CompiledFilter[],
  domain: string,
  skipped: Skipped[] = [],
): DerivedRecord[] {
  if (!node) return [];
  const cidr = parseCidr(allocation.address);
  if (!cidr) {
    skipped.push({
      allocationId: allocation.id,
      filter: '*',
      reason: `unreadable address ${allocation.address}`,
    });
    return [];
  }
  const address = cidr.family === 'ipv6' ? compressV6(cidr.address) : cidr.address;
  const out: DerivedRecord[] = [];
  const ctx = { node, allocation };
  for (const f of filters) {
    if (!f.matcher(ctx)) continue;
    const rendered = f.template(ctx);
    const name = rendered === null ? null : placeName(rendered, domain);
    if (name === null || !isServableName(name)) {
      skipped.push({
        allocationId: allocation.id,
        filter: f.name,
        reason:
          rendered === null
            ? 'template needs data the node lacks'
            : name === null
              ? `name ${rendered} is outside the cluster domain ${domain}`
              : `name ${name} is not a valid host name`,
      });
      continue;
    }
    const source = { allocationId: allocation.id, filterId: f.id };
    out.push({ zone: domain, name, type: cidr.family === 'ipv4' ? 'A' : 'AAAA', data: address, ...source });
    out.push({
      zone: reverseZone(cidr.address, cidr.prefix),
      name: reverseName(cidr.address),
      type: 'PTR',
      data: name,
      ...source,
    });
  }
  return out;
}

export const recordKey = (r: Pick<DerivedRecord, 'allocationId' | 'filterId' | 'type'>) =>
  `${r.allocationId}/${r.filterId}/${r.type}`;

/** What to change so `have` becomes `want`, and which zones that touches. */
export function diffRecords(have: readonly DerivedRecord[], want: readonly DerivedRecord[]) {
  const byKey = new Map(have.map((r) => [recordKey(r), r]));
  const upsert: DerivedRecord[] = [];
  const zones = new Set<string>();
  for (const w of want) {
    const h = byKey.get(recordKey(w));
    byKey.delete(recordKey(w));
    if (h && h.zone === w.zone && h.name === w.name && h.data === w.data) continue;
    upsert.push(w);
    zones.add(w.zone);
    if (h) zones.add(h.zone);
  }
  const remove = [...byKey.values()];
  for (const r of remove) zones.add(r.zone);
  return { upsert, remove, zones };
}

/** The reverse zones a set of allocations falls in. */
export function liveReverseZones(allocations: readonly Pick<AllocationSummary, 'address'>[]): string[] {
  const out = new Set<string>();
  for (const a of allocations) {
    const c = parseCidr(a.address);
    if (c) out.add(reverseZone(c.address, c.prefix));
  }
  return [...out];
}
