import type { Answer } from 'dns-packet';
import type { DnsRecord } from '../../../shared/catalogue/index.js';

/** Numeric RR types we serve (RFC 1035, 3596). */
export const T = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
const typeNum: Record<DnsRecord['type'], number> = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28 };

export interface ZoneSettings {
  /** Name server host name written in SOA MNAME and NS. */
  nsName: string;
  /** Addresses of nsName, served as glue when nsName is inside a zone. */
  nsAddresses: { v4: string[]; v6: string[] };
  hostmaster: string;
  ttl: number;
  refresh: number;
  retry: number;
  expire: number;
  /** Negative-caching TTL (RFC 2308 uses min(SOA TTL, MINIMUM)). */
  minimum: number;
}

export interface StoredRecord {
  zone: string;
  name: string;
  type: 'A' | 'AAAA' | 'PTR';
  data: string;
}

export interface ZoneView {
  name: string;
  serial: number;
  soa: Answer;
  /** SOA as sent in the authority section of negative answers (TTL capped by MINIMUM). */
  negativeSoa: Answer;
  ns: Answer[];
  glue: Answer[];
  /** owner → type → RRset. */
  owners: Map<string, Map<number, Answer[]>>;
  /** Names that exist only because something below them does (RFC 8020: NODATA, not NXDOMAIN). */
  empty: Set<string>;
  records: DnsRecord[];
}

export interface Snapshot {
  /** Monotonic build number; the server drops its answer cache when it changes. */
  version: number;
  zones: Map<string, ZoneView>;
}

export const emptySnapshot: Snapshot = { version: 0, zones: new Map() };

/** The zone a name falls in: the longest zone that is a suffix of it, or undefined (not ours). */
export function findZone(s: Snapshot, name: string): ZoneView | undefined {
  let n = name;
  for (let i = 0; i < 128; i++) {
    const z = s.zones.get(n);
    if (z) return z;
    if (n === '') return undefined;
    const dot = n.indexOf('.');
    n = dot < 0 ? '' : n.slice(dot + 1);
  }
  return undefined;
}

const rr = (name: string, type: DnsRecord['type'], ttl: number, data: unknown): Answer =>
  ({ name, type, class: 'IN', ttl, data }) as Answer;

/**
 * Builds the served view from the persisted records and zone serials. Pure: the same rows give the same
 * view, so every instance serving from the same database answers the same.
 */
export function buildSnapshot(
  version: number,
  zones: readonly { name: string; serial: number }[],
  records: readonly StoredRecord[],
  settings: ZoneSettings,
): Snapshot {
  const out = new Map<string, ZoneView>();
  const { ttl } = settings;
  for (const z of zones) {
    const soaData = {
      mname: settings.nsName,
      rname: settings.hostmaster,
      serial: z.serial,
      refresh: settings.refresh,
      retry: settings.retry,
      expire: settings.expire,
      minimum: settings.minimum,
    };
    const view: ZoneView = {
      name: z.name,
      serial: z.serial,
      soa: rr(z.name, 'SOA', ttl, soaData),
      negativeSoa: rr(z.name, 'SOA', Math.min(ttl, settings.minimum), soaData),
      ns: [rr(z.name, 'NS', ttl, settings.nsName)],
      glue: [],
      owners: new Map(),
      empty: new Set(),
      records: [],
    };
    out.set(z.name, view);
  }
  const seen = new Set<string>();
  const add = (zoneName: string, name: string, type: DnsRecord['type'], data: string) => {
    const view = out.get(zoneName);
    if (!view) return;
    const key = `${name}\u0000${type}\u0000${data}`;
    if (seen.has(key)) return; // two filters naming the same thing serve one record
    seen.add(key);
    let types = view.owners.get(name);
    if (!types) {
      types = new Map();
      view.owners.set(name, types);
    }
    const t = typeNum[type];
    let set = types.get(t);
    if (!set) {
      set = [];
      types.set(t, set);
    }
    set.push(rr(name, type, ttl, data));
    view.records.push({ name, type, ttl, data });
  };
  for (const view of out.values()) {
    const apex = new Map<number, Answer[]>([
      [T.SOA, [view.soa]],
      [T.NS, view.ns],
    ]);
    view.owners.set(view.name, apex);
  }
  // Glue for the name server when it lives in one of our zones.
  for (const [fam, type] of [
    ['v4', 'A'],
    ['v6', 'AAAA'],
  ] as const) {
    for (const a of settings.nsAddresses[fam]) {
      for (const view of out.values()) {
        if (settings.nsName === view.name || settings.nsName.endsWith(`.${view.name}`)) {
          add(view.name, settings.nsName, type, a);
          view.glue.push(rr(settings.nsName, type, ttl, a));
        }
      }
    }
  }
  const sorted = [...records].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : 0,
  );
  for (const r of sorted) {
    // A record is served by the most specific zone that holds it (nested reverse zones).
    const view = findZone({ version, zones: out }, r.name);
    if (view) add(view.name, r.name, r.type, r.data);
  }
  for (const view of out.values()) {
    for (const owner of view.owners.keys()) {
      let n = owner;
      while (n !== view.name && n.includes('.')) {
        n = n.slice(n.indexOf('.') + 1);
        if (!view.owners.has(n)) view.empty.add(n);
      }
    }
  }
  return { version, zones: out };
}

/** The records of a zone as served: SOA, NS, then the rest by name. */
export function zoneRecords(view: ZoneView, settings: ZoneSettings): DnsRecord[] {
  const soa = `${settings.nsName}. ${settings.hostmaster}. ${view.serial} ${settings.refresh} ${settings.retry} ${settings.expire} ${settings.minimum}`;
  return [
    { name: view.name, type: 'SOA', ttl: settings.ttl, data: soa },
    { name: view.name, type: 'NS', ttl: settings.ttl, data: settings.nsName },
    ...view.records,
  ];
}
