import type { Subscription } from '@nats-io/transport-node';
import type { Bus } from '../../shared/bus/bus.js';
import { causedBy } from '../../shared/bus/envelope.js';
import { dnsMessages, roleRun } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import { checkFilter } from './domain/filters.js';
import { normaliseName } from './domain/names.js';
import { type Snapshot, type ZoneSettings, zoneRecords } from './domain/snapshot.js';
import type { Projection } from './projection.js';

export interface RpcDeps {
  bus: Bus;
  database: Database;
  projection: Projection;
  log: Logger;
  domain: string;
  servers: string[];
  settings: ZoneSettings;
  snapshot: () => Snapshot;
  resync: () => Promise<{ nodes: number; allocations: number; changedZones: string[] }>;
}

/** dns-db's answers: name filter CRUD, zones as served, re-sync, and the dns-client data. */
export function serveRpcs(d: RpcDeps): Subscription[] {
  const { bus, database, projection, log } = d;
  const client = () => ({ servers: d.servers, domain: d.domain });
  return [
    bus.serve(dnsMessages.listFilters, async () => ({ filters: await store.listFilters(database.db) })),
    bus.serve(dnsMessages.getFilter, async (req) => store.findFilter(database.db, req.filter)),
    bus.serve(dnsMessages.createFilter, async (req, env) => {
      checkFilter(req);
      const f = await projection.filters((tx) => store.insertFilter(tx, req), causedBy(env));
      log.info({ filter: f.name, filterId: f.id, priority: f.priority }, 'dns name filter created');
      return f;
    }),
    bus.serve(dnsMessages.updateFilter, async (req, env) => {
      const f = await projection.filters(async (tx) => {
        const old = await store.findFilter(tx, req.filter);
        const c = req.changes;
        const next = {
          name: c.name ?? old.name,
          matcher: c.matcher ?? old.matcher,
          priority: c.priority ?? old.priority,
          template: c.template ?? old.template,
          service: c.service ?? old.service,
        };
        checkFilter(next);
        return store.updateFilterRow(tx, old.id, next);
      }, causedBy(env));
      log.info(
        { filter: f.name, filterId: f.id, changes: Object.keys(req.changes) },
        'dns name filter updated',
      );
      return f;
    }),
    bus.serve(dnsMessages.deleteFilter, async (req, env) => {
      const id = await projection.filters(async (tx) => {
        const old = await store.findFilter(tx, req.filter);
        await store.deleteFilterRow(tx, old.id);
        return old.id;
      }, causedBy(env));
      log.info({ filterId: id }, 'dns name filter deleted');
      return { deleted: id };
    }),
    bus.serve(dnsMessages.getZone, async (req) => {
      const name = normaliseName(req.zone);
      const view = d.snapshot().zones.get(name);
      if (!view) throw new NotFoundError(`dns-db serves no zone ${name}`, { field: 'zone' });
      return { zone: view.name, serial: view.serial, records: zoneRecords(view, d.settings) };
    }),
    bus.serve(dnsMessages.listZones, async () => ({
      zones: [...d.snapshot().zones.values()]
        .map((z) => ({ zone: z.name, serial: z.serial, records: z.records.length + 2 }))
        .sort((a, b) => (a.zone < b.zone ? -1 : 1)),
    })),
    bus.serve(dnsMessages.resync, async () => d.resync()),
    bus.serve(dnsMessages.clientConfig, async () => client()),
    // Roles owned by dns-db (dns-service, dns-database): their run hands nodes the resolver settings.
    bus.serve(roleRun['dns-db'], async (req) => {
      const wanted = (req.data as { crowbar?: { dns?: { domain?: unknown } } }).crowbar?.dns?.domain;
      if (typeof wanted === 'string' && normaliseName(wanted) !== d.domain)
        log.warn(
          { role: req.role, node: req.nodeId, wanted, serving: d.domain },
          'deployment asks for a DNS domain other than CROWBAR_DNS_DOMAIN; serving the configured one',
        );
      log.info({ role: req.role, node: req.nodeId, runId: req.runId }, 'dns role run answered');
      return { wall: { dns: client() }, log: `dns: servers ${d.servers.join(', ')}; domain ${d.domain}\n` };
    }),
  ];
}
