import { z } from 'zod';
import { event, recordRef, rpc, type StreamDecl } from './define.js';

/**
 * Messages owned by dns-db: name filters (the original's dns_name_filters), the zones as served, the
 * re-sync trigger and the data a node's dns-client needs.
 */
const id = z.number().int().positive();
export const dnsFilterRef = recordRef(100);

/**
 * Matcher: comma-separated AND of tests (reference §6.7): `net.category == "x"`, `net.name == "x"`,
 * `range.name == "x"`, `deployment.name == "x"`, `node.role has "x"`, `node.attr.<field> == "x"`.
 * An empty matcher matches every allocation. Syntax is checked by dns-db (422 naming the test).
 */
const filterFields = {
  name: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, - or _, starting with a letter'),
  matcher: z.string().max(1000),
  /** Lower runs first; unique. */
  priority: z.number().int().min(0).max(1_000_000),
  /** e.g. `{{node.name}}` or `{{node.hostname}}-{{network.name}}`; checked by dns-db. */
  template: z.string().min(1).max(255),
  /** The DNS service the filter feeds (kept from the original; only `system` exists). */
  service: z.string().min(1).max(63),
};
export const dnsFilterInput = z.object({
  ...filterFields,
  matcher: filterFields.matcher.default(''),
  priority: filterFields.priority.default(50),
  service: filterFields.service.default('system'),
});
/** Fields to change; absent ones keep their value. */
export const dnsFilterChanges = z.object(filterFields).partial();
export const dnsFilter = z.object(filterFields).extend({
  id,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type DnsFilter = z.infer<typeof dnsFilter>;

export const dnsRecord = z.object({
  name: z.string(),
  type: z.enum(['SOA', 'NS', 'A', 'AAAA', 'PTR']),
  ttl: z.number().int().nonnegative(),
  /** Presentation form: address, target name, or the SOA fields separated by spaces. */
  data: z.string(),
});
export type DnsRecord = z.infer<typeof dnsRecord>;

export const dnsZone = z.object({
  zone: z.string(),
  serial: z.number().int().nonnegative(),
  records: z.array(dnsRecord),
});

const filterExample = {
  id: 1,
  name: 'default',
  matcher: 'net.category == "admin"',
  priority: 50,
  template: '{{node.name}}',
  service: 'system',
  createdAt: '2026-11-25T10:00:00.000Z',
  updatedAt: '2026-11-25T10:00:00.000Z',
};

export const dnsMessages = {
  /** A zone's content changed; `serial` is the new SOA serial. */
  zoneChanged: event('dns.zone.changed', 1, z.object({ zone: z.string(), serial: z.number().int() }), {
    zone: 'crowbar.internal',
    serial: 1795600000,
  }),
  listFilters: rpc('dns-db', 'filter.list', 1, z.object({}), z.object({ filters: z.array(dnsFilter) }), {
    request: {},
    response: { filters: [filterExample] },
  }),
  getFilter: rpc('dns-db', 'filter.get', 1, z.object({ filter: dnsFilterRef }), dnsFilter, {
    request: { filter: 'default' },
    response: filterExample,
  }),
  createFilter: rpc('dns-db', 'filter.create', 1, dnsFilterInput, dnsFilter, {
    request: {
      name: 'bmc',
      matcher: 'net.category == "bmc"',
      priority: 60,
      template: '{{node.hostname}}-bmc',
    },
    response: { ...filterExample, id: 2, name: 'bmc', priority: 60, template: '{{node.hostname}}-bmc' },
  }),
  updateFilter: rpc(
    'dns-db',
    'filter.update',
    1,
    z.object({ filter: dnsFilterRef, changes: dnsFilterChanges }),
    dnsFilter,
    {
      request: { filter: 'default', changes: { priority: 40 } },
      response: { ...filterExample, priority: 40 },
    },
  ),
  deleteFilter: rpc(
    'dns-db',
    'filter.delete',
    1,
    z.object({ filter: dnsFilterRef }),
    z.object({ deleted: id }),
    {
      request: { filter: 'bmc' },
      response: { deleted: 2 },
    },
  ),
  /** The records of one zone exactly as the server answers them (SOA first). */
  getZone: rpc('dns-db', 'zone.get', 1, z.object({ zone: z.string().min(1).max(255) }), dnsZone, {
    request: { zone: 'crowbar.internal' },
    response: {
      zone: 'crowbar.internal',
      serial: 1795600000,
      records: [{ name: 'n1.crowbar.internal', type: 'A', ttl: 60, data: '198.18.0.81' }],
    },
  }),
  listZones: rpc(
    'dns-db',
    'zone.list',
    1,
    z.object({}),
    z.object({
      zones: z.array(z.object({ zone: z.string(), serial: z.number().int(), records: z.number().int() })),
    }),
    {
      request: {},
      response: { zones: [{ zone: 'crowbar.internal', serial: 1795600000, records: 3 }] },
    },
  ),
  /** Re-reads nodes and allocations from their owners and repairs the projection. */
  resync: rpc(
    'dns-db',
    'resync',
    1,
    z.object({}),
    z.object({ nodes: z.number().int(), allocations: z.number().int(), changedZones: z.array(z.string()) }),
    { request: {}, response: { nodes: 3, allocations: 6, changedZones: [] } },
  ),
  /** What a node's resolver should use (the dns-client data). */
  clientConfig: rpc(
    'dns-db',
    'client.config',
    1,
    z.object({}),
    z.object({ servers: z.array(z.string()), domain: z.string() }),
    { request: {}, response: { servers: ['198.18.0.10'], domain: 'crowbar.internal' } },
  ),
};
export const dnsStreams: StreamDecl[] = [];
