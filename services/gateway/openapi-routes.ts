import { dhcpRouteDocs } from './openapi/dhcp.js';
import { dnsRouteDocs } from './openapi/dns.js';
import type { RouteDocs } from './openapi/docs.js';
import { gatewayRouteDocs } from './openapi/gateway.js';
import { inventoryRouteDocs } from './openapi/inventory.js';
import { ipamRouteDocs } from './openapi/ipam.js';
import { machinesRouteDocs } from './openapi/machines.js';
import { webhookRouteDocs } from './openapi-webhooks.js';

export type { Example, QueryParam, RouteDoc, RouteDocs } from './openapi/docs.js';

/**
 * Every route's documentation, one file per resource family under `openapi/` (a new family is a new
 * file joined here); `openapi.ts` builds the document from it and the app's routes.
 */
export const routeDocs: RouteDocs = {
  ...inventoryRouteDocs,
  ...ipamRouteDocs,
  ...dhcpRouteDocs,
  ...dnsRouteDocs,
  ...machinesRouteDocs,
  ...gatewayRouteDocs,
  ...webhookRouteDocs,
};
