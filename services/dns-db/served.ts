import type { Database } from '../../shared/db/database.js';
import type { Logger } from '../../shared/log.js';
import { servingState } from './db/store.js';
import { type DerivedRecord, recordKey } from './domain/records.js';
import { buildSnapshot, type ZoneSettings } from './domain/snapshot.js';
import type { Change } from './projection.js';
import type { DnsEngine } from './server/engine.js';

/**
 * The records and serials this instance serves, mirrored in memory. Its own commits are applied from
 * the change they made (no round trip, so a new address answers within milliseconds); another
 * instance's commits, announced by NOTIFY, trigger a reload from the database. Snapshot rebuilds are
 * coalesced so a burst of changes costs one or two rebuilds.
 */
export function createServedState(deps: {
  database: Database;
  engine: DnsEngine;
  settings: ZoneSettings;
  domain: string;
  log: Logger;
}) {
  const { database, engine, settings, domain, log } = deps;
  let records = new Map<string, DerivedRecord>();
  let serials = new Map<string, number>();
  let version = 0;
  let stopped = false;
  let rebuildTimer: NodeJS.Timeout | null = null;
  let loading: Promise<void> | null = null;
  let loadAgain = false;

  // Rebuilds wait at least as long as the last one took, so a burst of changes (a rack booting) never
  // spends more than about half the event loop rebuilding instead of answering.
  let lastRebuildMs = 0;
  const rebuild = () => {
    rebuildTimer = null;
    const started = performance.now();
    const all = [...records.values()];
    // Served: the cluster domain, zones with records, and every reverse zone ever created (kept after its
    // last address goes, so a PTR for a freed address says NXDOMAIN rather than REFUSED).
    const withRecords = new Set(all.map((r) => r.zone));
    const zones = [...serials]
      .filter(([z]) => z === domain || withRecords.has(z) || z.endsWith('.arpa'))
      .map(([name, serial]) => ({ name, serial }));
    const snap = buildSnapshot(++version, zones, all, settings);
    engine.install(snap);
    lastRebuildMs = performance.now() - started;
    log.debug({ version, zones: zones.length, records: all.length }, 'dns snapshot installed');
  };
  const scheduleRebuild = () => {
    if (!stopped) rebuildTimer ??= setTimeout(rebuild, Math.max(2, lastRebuildMs));
  };

  const loadOnce = async () => {
    const state = await servingState(database.db);
    records = new Map(state.records.map((r) => [recordKey(r), r]));
    serials = new Map(state.zones.map((z) => [z.name, z.serial]));
    rebuild();
  };
  const load = (): Promise<void> => {
    if (loading) {
      loadAgain = true;
      return loading;
    }
    loading = loadOnce()
      .catch((err: unknown) => log.error({ err }, 'dns state reload failed; serving the previous snapshot'))
      .finally(() => {
        loading = null;
        if (loadAgain && !stopped) {
          loadAgain = false;
          void load();
        }
      });
    return loading;
  };

  return {
    load,
    apply(c: Change) {
      // A reload in flight may have read the database before this commit; read again after it.
      if (loading) loadAgain = true;
      for (const r of c.remove) records.delete(recordKey(r));
      for (const r of c.upsert) records.set(recordKey(r), r);
      for (const s of c.serials) serials.set(s.zone, Math.max(s.serial, serials.get(s.zone) ?? 0));
      scheduleRebuild();
    },
    stop() {
      stopped = true;
      if (rebuildTimer) clearTimeout(rebuildTimer);
      return loading ?? Promise.resolve();
    },
  };
}
