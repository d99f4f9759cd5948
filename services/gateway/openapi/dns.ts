import { dnsFilterChanges, dnsFilterInput, dnsMessages } from '../../../shared/catalogue/index.js';
import { arrayOf, ex, fromRpc, type RouteDoc, type RouteDocs } from './docs.js';

/** dns-db's routes: name filters, zones, resync and the client view. */
export const dnsRouteDocs: RouteDocs = {
  // dns
  'GET /api/v2/dns_name_filters': {
    tag: 'dns',
    summary: 'List DNS name filters',
    response: arrayOf(dnsMessages.listFilters, 'filters'),
  },
  'POST /api/v2/dns_name_filters': {
    tag: 'dns',
    summary: 'Create a DNS name filter',
    body: ex(dnsFilterInput, dnsMessages.createFilter.example),
    status: 201,
    response: fromRpc(dnsMessages.createFilter),
  },
  'GET /api/v2/dns_name_filters/:id': {
    tag: 'dns',
    summary: 'Show a DNS name filter',
    response: fromRpc(dnsMessages.getFilter),
  },
  ...Object.fromEntries(
    (['PUT', 'PATCH'] as const).map((m) => [
      `${m} /api/v2/dns_name_filters/:id`,
      {
        tag: 'dns',
        summary: 'Change a DNS name filter',
        body: ex(dnsFilterChanges, dnsMessages.updateFilter.example.changes),
        response: fromRpc(dnsMessages.updateFilter),
      } satisfies RouteDoc,
    ]),
  ),
  'DELETE /api/v2/dns_name_filters/:id': {
    tag: 'dns',
    summary: 'Delete a DNS name filter',
    response: fromRpc(dnsMessages.deleteFilter),
  },
  'GET /api/v2/dns/zones': {
    tag: 'dns',
    summary: 'Zones served',
    response: arrayOf(dnsMessages.listZones, 'zones'),
  },
  'GET /api/v2/dns/zones/:zone': {
    tag: 'dns',
    summary: "A zone's records as served",
    params: { zone: 'zone name' },
    response: fromRpc(dnsMessages.getZone),
  },
  'POST /api/v2/dns/resync': {
    tag: 'dns',
    summary: 'Re-read nodes and allocations and repair the zones',
    response: fromRpc(dnsMessages.resync),
  },
  'GET /api/v2/dns/client': {
    tag: 'dns',
    summary: "What a node's resolver should use",
    response: fromRpc(dnsMessages.clientConfig),
  },
};
