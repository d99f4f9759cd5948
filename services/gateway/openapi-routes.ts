import { z } from 'zod';
import {
  alivenessMessages,
  annealerMessages,
  dhcpMessages,
  dnsFilterChanges,
  dnsFilterInput,
  dnsMessages,
  type InventoryOp,
  inventoryAnnealRpcs,
  inventoryOpRpcs,
  inventoryOps,
  ipamRpcs,
  json,
  jsonObject,
  leaseState,
  networkCategory,
  networkChanges,
  networkInput,
  noderoleState,
  provisionerMessages,
  type RpcDef,
  rangeChanges,
  rangeInput,
  routerInput,
  serviceName,
} from '../../shared/catalogue/index.js';
import { webhookRouteDocs } from './openapi-webhooks.js';
import { bootenvReport, selfReport } from './routes/aliveness.js';
import { joinTokenRequest, registration } from './routes/register.js';
import { auditPage, createdToken, tokenInput, tokenRow } from './routes/tokens.js';

/** A schema with an example that must validate against it (test/openapi.test.ts checks each). */
export interface Example {
  schema: z.ZodType;
  example: unknown;
}
export interface QueryParam {
  schema: z.ZodType;
  description: string;
}
/** How one route is documented; the key is `METHOD /api/v2/path` as the hono app has it. */
export interface RouteDoc {
  tag: string;
  summary: string;
  description?: string;
  /** Path parameter descriptions; a parameter not named here is "id or name". */
  params?: Record<string, string>;
  query?: Record<string, QueryParam>;
  body?: Example;
  /** The success answer: its status (200 unless said) and body. */
  status?: 200 | 201 | 202;
  response: Example;
  /** Other answers that are not errors (e.g. the anneal's 202 and 409, a health 503). */
  alsoAnswers?: Record<number, { description: string; example?: Example }>;
  /** `operator` (default): an operator token; `none`: public; `node`: the node's own credential. */
  auth?: 'operator' | 'none' | 'node' | 'discovery';
  /** The answer is not JSON. */
  contentType?: 'text/event-stream' | 'text/html';
}

const ex = <S extends z.ZodType>(schema: S, example: z.input<S>): Example => ({ schema, example });
const fromRpc = (d: RpcDef): Example => ({ schema: d.response, example: d.exampleResponse });
/** The one array field of an RPC answer, for routes that answer it bare. */
const arrayOf = <R extends z.ZodObject>(
  d: RpcDef<z.ZodType, R>,
  key: keyof R['shape'] & string,
): Example => ({
  schema: d.response.shape[key] as z.ZodType,
  example: (d.exampleResponse as Record<string, unknown>)[key],
});
const inv = (op: Exclude<InventoryOp, 'node.rotate_credential'>) => fromRpc(inventoryOpRpcs[op]);
const idOrName = z.union([z.number().int().positive(), z.string().min(1).max(255)]);
const q = (schema: z.ZodType, description: string): QueryParam => ({ schema, description });
const positive = z.string().regex(/^\d{1,9}$/);

const nodes = 'nodes';
const noderoles = 'node_roles';
const deployments = 'deployments';
const droles = 'deployment_roles';
const networks = 'networks';

/** Inventory's ops: the body is the op's schema without the fields the path carries. */
const body = <O extends InventoryOp>(op: O, example: Record<string, unknown>, omit: string[] = []) => {
  const s = inventoryOps[op] as z.ZodObject;
  const mask = Object.fromEntries(omit.map((k) => [k, true])) as Record<string, true>;
  return { schema: omit.length ? s.omit(mask as never) : s, example } satisfies Example;
};
const dataBody = ex(z.object({ data: jsonObject }), { data: { test: { greeting: 'hi' } } });
const valueBody = ex(z.object({ value: json }), { value: 'r1' });
const attribParams = { id: 'id (or name, for nodes)', attrib: 'the attrib name, e.g. test-rack' };

/** Every list's paging: keyset cursors, so a page never shifts when rows are added. */
const pageQuery = {
  limit: q(positive, "page size (default 500, at most 1000); the answer's `next` is null on the last page"),
  cursor: q(z.string(), 'the `next` of the page before (opaque); left out, the first page'),
};
const noderoleQuery = {
  ...pageQuery,
  node: q(idOrName, 'only noderoles on this node (id or name)'),
  deployment: q(idOrName, 'only noderoles in this deployment (id or name)'),
  role: q(z.string(), 'only noderoles of this role'),
  state: q(noderoleState, 'only noderoles in this state'),
};
const categoryQuery = { category: q(networkCategory, 'network category') };
const bootEventQuery = {
  before: q(positive, 'cursor: only events with a smaller id (newest first)'),
  limit: q(positive, 'at most this many (default 100, at most 1000)'),
};
const okList = z.object({
  node: z.number().int(),
  alive: z.boolean(),
  changed: z.boolean(),
  applied: z.boolean(),
});
const sseDoc = z.string().describe('text/event-stream: `id: <stream sequence>`, `data: <envelope JSON>`');

export const routeDocs: Record<string, RouteDoc> = {
  // nodes
  'GET /api/v2/nodes': { tag: nodes, summary: 'List nodes', query: pageQuery, response: inv('node.list') },
  'POST /api/v2/nodes': {
    tag: nodes,
    summary: 'Create a node',
    description: 'Answers the node with its credential (shown once).',
    body: body('node.create', { name: 'web1.lab.crowbar.test', alive: true, deployment: 'web' }),
    status: 201,
    response: inv('node.create'),
  },
  'GET /api/v2/nodes/:id': { tag: nodes, summary: 'Show a node', response: inv('node.get') },
  'PUT /api/v2/nodes/:id': {
    tag: nodes,
    summary: 'Update a node (move it with `deployment`)',
    body: body('node.update', { description: 'rack 4', deployment: 'web', version: 2 }, ['node']),
    response: inv('node.update'),
  },
  'DELETE /api/v2/nodes/:id': { tag: nodes, summary: 'Delete a node', response: inv('node.delete') },
  'PUT /api/v2/nodes/:id/propose': {
    tag: nodes,
    summary: "Propose the node's noderoles",
    response: inv('node.propose'),
  },
  'PUT /api/v2/nodes/:id/commit': {
    tag: nodes,
    summary: "Commit the node's noderoles",
    response: inv('node.commit'),
  },
  'GET /api/v2/nodes/:id/node_roles': {
    tag: nodes,
    summary: "The node's noderoles",
    query: pageQuery,
    response: inv('noderole.list'),
  },
  'GET /api/v2/nodes/:id/node_roles/:role': {
    tag: nodes,
    summary: "The node's noderole of a role",
    params: { role: 'role name' },
    response: inv('noderole.get'),
  },
  'GET /api/v2/nodes/:id/attribs/:attrib': {
    tag: nodes,
    summary: 'Read an attrib of the node',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/nodes/:id/attribs/:attrib': {
    tag: nodes,
    summary: 'Write an attrib of the node',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },
  'GET /api/v2/nodes/:id/addresses': {
    tag: nodes,
    summary: "The node's addresses",
    query: { network: q(idOrName, 'only on this network'), ...categoryQuery },
    response: fromRpc(ipamRpcs.allocationFind),
  },
  'GET /api/v2/nodes/:id/boot_events': {
    tag: nodes,
    summary: 'What the node fetched to boot (newest first)',
    query: bootEventQuery,
    response: arrayOf(provisionerMessages.bootEventList, 'events'),
  },
  'GET /api/v2/nodes/:id/health': {
    tag: nodes,
    summary: "The aliveness probe's view of the node",
    query: { limit: q(positive, 'probe records (1–500, default 50)') },
    response: fromRpc(alivenessMessages.nodeHealth),
  },

  // roles
  'GET /api/v2/roles': { tag: 'roles', summary: 'List roles', response: inv('role.list') },
  'GET /api/v2/roles/:id': { tag: 'roles', summary: 'Show a role', response: inv('role.get') },

  // node_roles
  'GET /api/v2/node_roles': {
    tag: noderoles,
    summary: 'List noderoles',
    query: noderoleQuery,
    response: inv('noderole.list'),
  },
  'POST /api/v2/node_roles': {
    tag: noderoles,
    summary: 'Bind a role to a node (a proposed noderole)',
    body: body('noderole.create', { node: 'web1.lab.crowbar.test', role: 'test-top' }),
    status: 201,
    response: inv('noderole.create'),
  },
  'GET /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: 'Show a noderole (with its run log)',
    params: { id: 'noderole id' },
    response: inv('noderole.get'),
  },
  'PUT /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: "Replace a proposed noderole's data",
    params: { id: 'noderole id' },
    body: dataBody,
    response: inv('noderole.update'),
  },
  'DELETE /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: 'Delete a noderole (and its never-run children)',
    params: { id: 'noderole id' },
    response: inv('noderole.delete'),
  },
  ...Object.fromEntries(
    (['retry', 'propose', 'commit'] as const).map((a) => [
      `PUT /api/v2/node_roles/:id/${a}`,
      {
        tag: noderoles,
        summary: { retry: 'Run it again', propose: 'Propose it', commit: 'Commit it' }[a],
        params: { id: 'noderole id' },
        response: inv(`noderole.${a}`),
      } satisfies RouteDoc,
    ]),
  ),
  'GET /api/v2/node_roles/:id/attribs/:attrib': {
    tag: noderoles,
    summary: 'Read an attrib of the noderole',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/node_roles/:id/attribs/:attrib': {
    tag: noderoles,
    summary: 'Write an attrib into the proposed data',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },

  // deployments
  'GET /api/v2/deployments': {
    tag: deployments,
    summary: 'List deployments',
    response: inv('deployment.list'),
  },
  'POST /api/v2/deployments': {
    tag: deployments,
    summary: 'Create a deployment',
    body: body('deployment.create', { name: 'web', parent: 'system' }),
    status: 201,
    response: inv('deployment.create'),
  },
  'GET /api/v2/deployments/:id': {
    tag: deployments,
    summary: 'Show a deployment',
    response: inv('deployment.get'),
  },
  'DELETE /api/v2/deployments/:id': {
    tag: deployments,
    summary: 'Delete a deployment (not system, not one with children)',
    response: inv('deployment.delete'),
  },
  'PUT /api/v2/deployments/:id/propose': {
    tag: deployments,
    summary: 'Propose a deployment (the annealer leaves it alone)',
    response: inv('deployment.propose'),
  },
  'PUT /api/v2/deployments/:id/recall': {
    tag: deployments,
    summary: 'Recall a deployment (the same as propose)',
    response: inv('deployment.propose'),
  },
  'PUT /api/v2/deployments/:id/commit': {
    tag: deployments,
    summary: 'Commit a deployment',
    response: inv('deployment.commit'),
  },
  'GET /api/v2/deployments/:id/graph': {
    tag: deployments,
    summary: 'The noderole graph (vertices and parent→child edges)',
    response: inv('deployment.graph'),
  },
  'GET /api/v2/deployments/:id/preview': {
    tag: deployments,
    summary: 'What a commit would do, without doing it',
    response: inv('deployment.preview'),
  },
  'GET /api/v2/deployments/:id/node_roles': {
    tag: deployments,
    summary: "The deployment's noderoles",
    query: pageQuery,
    response: inv('noderole.list'),
  },
  'GET /api/v2/deployments/:id/deployment_roles': {
    tag: deployments,
    summary: "The deployment's roles",
    response: inv('deployment_role.list'),
  },

  // deployment_roles
  'GET /api/v2/deployment_roles': {
    tag: droles,
    summary: 'List deployment roles',
    response: inv('deployment_role.list'),
  },
  'POST /api/v2/deployment_roles': {
    tag: droles,
    summary: 'Add a role to a deployment',
    body: body('deployment_role.create', { deployment: 'web', role: 'test-writer' }),
    status: 201,
    response: inv('deployment_role.create'),
  },
  'GET /api/v2/deployment_roles/:id': {
    tag: droles,
    summary: 'Show a deployment role',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.get'),
  },
  'PUT /api/v2/deployment_roles/:id': {
    tag: droles,
    summary: 'Merge into the proposed data',
    params: { id: 'deployment role id' },
    body: dataBody,
    response: inv('deployment_role.update'),
  },
  'PUT /api/v2/deployment_roles/:id/commit': {
    tag: droles,
    summary: 'Commit the proposed data',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.commit'),
  },
  'PUT /api/v2/deployment_roles/:id/propose': {
    tag: droles,
    summary: 'Reset the proposed data to the committed data',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.propose'),
  },
  'GET /api/v2/deployment_roles/:id/attribs/:attrib': {
    tag: droles,
    summary: 'Read an attrib of the deployment role',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/deployment_roles/:id/attribs/:attrib': {
    tag: droles,
    summary: 'Write an attrib into the proposed data',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },
  'GET /api/v2/attribs': { tag: 'attribs', summary: 'List attribs', response: inv('attrib.list') },

  // anneal and runs
  'GET /api/v2/anneal': {
    tag: 'anneal',
    summary: 'The anneal (reference §3.9): 200 finished, 202 working or scheduled, 409 failed',
    response: ex(
      z.object({
        message: inventoryAnnealRpcs.status.response.shape.status,
        counts: inventoryAnnealRpcs.status.response.shape.counts,
      }),
      { message: 'finished', counts: { active: 12 } },
    ),
    alsoAnswers: {
      202: { description: 'working or scheduled' },
      409: { description: 'a noderole is in error' },
    },
  },
  'GET /api/v2/runs': {
    tag: 'anneal',
    summary: 'Runs in flight',
    query: {
      all: q(z.enum(['true', 'false']), '`true`: finished runs too, each with its reason'),
      ...pageQuery,
    },
    response: fromRpc(annealerMessages.runs),
  },

  // networks
  'GET /api/v2/networks': {
    tag: networks,
    summary: 'List networks',
    query: { ...categoryQuery, deployment: q(positive, 'deployment id') },
    response: fromRpc(ipamRpcs.networkList),
  },
  'POST /api/v2/networks': {
    tag: networks,
    summary: 'Create a network (with ranges and a router)',
    body: ex(networkInput, ipamRpcs.networkCreate.example),
    status: 201,
    response: fromRpc(ipamRpcs.networkCreate),
  },
  'GET /api/v2/networks/:id': {
    tag: networks,
    summary: 'Show a network',
    response: fromRpc(ipamRpcs.networkGet),
  },
  'PUT /api/v2/networks/:id': {
    tag: networks,
    summary: 'Change a network',
    body: ex(networkChanges, ipamRpcs.networkUpdate.example.changes),
    response: fromRpc(ipamRpcs.networkUpdate),
  },
  'PATCH /api/v2/networks/:id': {
    tag: networks,
    summary: 'Change a network (as PUT)',
    body: ex(networkChanges, ipamRpcs.networkUpdate.example.changes),
    response: fromRpc(ipamRpcs.networkUpdate),
  },
  'DELETE /api/v2/networks/:id': {
    tag: networks,
    summary: 'Delete a network',
    response: fromRpc(ipamRpcs.networkDelete),
  },
  'GET /api/v2/networks/:id/allocations': {
    tag: networks,
    summary: "The network's allocations",
    query: { node: q(idOrName, 'only this node') },
    response: fromRpc(ipamRpcs.allocationFind),
  },
  'POST /api/v2/networks/:id/allocate_ip': {
    tag: networks,
    summary: 'Give a node addresses on the network',
    body: ex(ipamRpcs.allocate.request.omit({ network: true }), { node: 2, range: 'host' }),
    status: 201,
    response: fromRpc(ipamRpcs.allocate),
  },
  'GET /api/v2/network_lookup': {
    tag: networks,
    summary: 'The network holding an address',
    query: { ip: q(z.string(), 'an address'), ...categoryQuery },
    response: fromRpc(ipamRpcs.networkLookup),
  },
  'GET /api/v2/network_ula': {
    tag: networks,
    summary: "The installation's unique local IPv6 /48",
    response: fromRpc(ipamRpcs.ulaPrefix),
  },
  'GET /api/v2/network_ranges': {
    tag: networks,
    summary: 'List ranges',
    query: { network: q(idOrName, 'only this network') },
    response: fromRpc(ipamRpcs.rangeList),
  },
  'POST /api/v2/network_ranges': {
    tag: networks,
    summary: 'Add a range to a network',
    body: ex(rangeInput.extend({ network: idOrName }), {
      network: 'admin',
      ...ipamRpcs.rangeCreate.example.range,
    }),
    status: 201,
    response: fromRpc(ipamRpcs.rangeCreate),
  },
  'GET /api/v2/network_ranges/:id': {
    tag: networks,
    summary: 'Show a range (by id, or by name with ?network=)',
    query: { network: q(idOrName, 'the network of a range named in the path') },
    response: fromRpc(ipamRpcs.rangeGet),
  },
  ...Object.fromEntries(
    (['PUT', 'PATCH'] as const).map((m) => [
      `${m} /api/v2/network_ranges/:id`,
      {
        tag: networks,
        summary: 'Change a range',
        query: { network: q(idOrName, 'the network of a range named in the path') },
        body: ex(rangeChanges, ipamRpcs.rangeUpdate.example.changes),
        response: fromRpc(ipamRpcs.rangeUpdate),
      } satisfies RouteDoc,
    ]),
  ),
  'DELETE /api/v2/network_ranges/:id': {
    tag: networks,
    summary: 'Delete a range',
    query: { network: q(idOrName, 'the network of a range named in the path') },
    response: fromRpc(ipamRpcs.rangeDelete),
  },
  'GET /api/v2/network_routers': {
    tag: networks,
    summary: 'List routers',
    query: { network: q(idOrName, 'only this network') },
    response: fromRpc(ipamRpcs.routerList),
  },
  'POST /api/v2/network_routers': {
    tag: networks,
    summary: 'Add a router to a network',
    body: ex(routerInput.extend({ network: idOrName }), {
      network: 'admin',
      ...ipamRpcs.routerCreate.example.router,
    }),
    status: 201,
    response: fromRpc(ipamRpcs.routerCreate),
  },
  'GET /api/v2/network_routers/:id': {
    tag: networks,
    summary: 'Show a router',
    params: { id: 'router id' },
    response: fromRpc(ipamRpcs.routerGet),
  },
  ...Object.fromEntries(
    (['PUT', 'PATCH'] as const).map((m) => [
      `${m} /api/v2/network_routers/:id`,
      {
        tag: networks,
        summary: 'Change a router',
        params: { id: 'router id' },
        body: ex(routerInput.omit({ family: true }).partial(), { pref: 20 }),
        response: fromRpc(ipamRpcs.routerUpdate),
      } satisfies RouteDoc,
    ]),
  ),
  'DELETE /api/v2/network_routers/:id': {
    tag: networks,
    summary: 'Delete a router',
    params: { id: 'router id' },
    response: fromRpc(ipamRpcs.routerDelete),
  },
  'GET /api/v2/network_allocations': {
    tag: networks,
    summary: 'List allocations',
    query: {
      node: q(idOrName, 'only this node'),
      network: q(idOrName, 'only this network'),
      ...categoryQuery,
    },
    response: fromRpc(ipamRpcs.allocationFind),
  },
  'POST /api/v2/network_allocations': {
    tag: networks,
    summary: 'Allocate a node addresses (automatically, or from a range with a suggestion)',
    body: ex(ipamRpcs.allocate.request, ipamRpcs.allocate.example),
    status: 201,
    response: fromRpc(ipamRpcs.allocate),
  },
  'GET /api/v2/network_allocations/:id': {
    tag: networks,
    summary: 'Show an allocation',
    params: { id: 'allocation id' },
    response: fromRpc(ipamRpcs.allocationGet),
  },
  'DELETE /api/v2/network_allocations/:id': {
    tag: networks,
    summary: 'Release an allocation',
    params: { id: 'allocation id' },
    response: fromRpc(ipamRpcs.allocationRelease),
  },

  // dhcp
  'GET /api/v2/dhcp/leases': {
    tag: 'dhcp',
    summary: 'Leases, a page at a time (a `Link: rel="next"` header names the next page)',
    query: {
      state: q(leaseState, 'only leases in this state'),
      mac: q(z.string(), 'only this MAC'),
      network: q(z.string(), 'only this network'),
      node: q(positive, 'only this node id'),
      cursor: q(z.string(), 'the `next` of the previous page (`after` is its older name)'),
      after: q(z.string(), 'the same as `cursor`'),
      limit: q(positive, 'page size (default 500, at most 5000)'),
    },
    response: fromRpc(dhcpMessages.leaseList),
  },
  'DELETE /api/v2/dhcp/leases/:address': {
    tag: 'dhcp',
    summary: 'Release a lease',
    params: { address: 'the leased IPv4 address' },
    response: fromRpc(dhcpMessages.leaseRelease),
  },
  'GET /api/v2/dhcp/reservations': {
    tag: 'dhcp',
    summary: 'Reservations (known nodes)',
    query: { node: q(positive, 'only this node id'), mac: q(z.string(), 'only this MAC') },
    response: arrayOf(dhcpMessages.reservationList, 'reservations'),
  },
  'GET /api/v2/dhcp/stats': {
    tag: 'dhcp',
    summary: 'Packet and lease counters',
    response: fromRpc(dhcpMessages.stats),
  },

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

  // provisioner
  'GET /api/v2/bootenvs': {
    tag: 'provisioner',
    summary: 'List bootenvs',
    response: arrayOf(provisionerMessages.bootenvList, 'bootenvs'),
  },
  'GET /api/v2/boot_events': {
    tag: 'provisioner',
    summary: 'What machines fetched to boot (newest first)',
    query: { node: q(positive, 'only this node id'), mac: q(z.string(), 'only this MAC'), ...bootEventQuery },
    response: arrayOf(provisionerMessages.bootEventList, 'events'),
  },

  // machines (node-facing)
  'POST /api/v2/join_tokens': {
    tag: 'machines',
    summary: 'A join token for a machine installed without discovery',
    body: ex(joinTokenRequest, { ttlSeconds: 3600 }),
    status: 201,
    response: ex(z.object({ token: z.string(), expiresAt: z.string(), usage: z.string() }), {
      token: 'cbj1.eyJleHAiOjE3OTYxNzA0OTd9.c2ln',
      expiresAt: '2026-12-02T01:14:57.000Z',
      usage: 'on the machine, as root: curl -fsS http://<provisioner>:<port>/join.sh | sh -s -- <token>',
    }),
  },
  'POST /api/v2/node-api/register': {
    tag: 'machines',
    summary: 'Register a machine (discovery or join token, or the node credential)',
    auth: 'discovery',
    body: ex(registration, {
      macs: ['52:54:00:12:34:56'],
      bootMac: '52:54:00:12:34:56',
      hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
      address: '198.18.0.23/24',
      facts: { cpus: 2 },
    }),
    status: 201,
    response: ex(
      z.object({
        node: z.object({ id: z.number().int().positive(), name: z.string() }),
        credential: z.string(),
        bootenv: z.string(),
        addresses: z.array(z.string()),
      }),
      {
        node: { id: 3, name: 'd52-54-00-12-34-56.crowbar.internal' },
        credential: 'z__t2r7mIsi_bM_CMZv7e1mvDOgfvocU',
        bootenv: 'sledgehammer',
        addresses: ['198.18.0.81/24'],
      },
    ),
    alsoAnswers: { 200: { description: 'a known machine registered again' } },
  },
  'PUT /api/v2/node-api/nodes/:id/alive': {
    tag: 'machines',
    summary: "A node's own aliveness report",
    auth: 'node',
    params: { id: 'node id' },
    body: ex(selfReport, { alive: true }),
    response: ex(okList.extend({ reason: z.string().optional() }), {
      node: 3,
      alive: true,
      changed: true,
      applied: true,
    }),
    alsoAnswers: { 202: { description: 'an unavailable node reporting dead: acknowledged, not applied' } },
  },
  'PUT /api/v2/node-api/nodes/:id/bootenv': {
    tag: 'machines',
    summary: 'An installer sets its node to bootenv local',
    auth: 'node',
    params: { id: 'node id' },
    body: ex(bootenvReport, { bootenv: 'local' }),
    response: ex(z.object({ node: z.number().int(), bootenv: z.literal('local'), changed: z.boolean() }), {
      node: 3,
      bootenv: 'local',
      changed: true,
    }),
  },

  // the gateway itself
  'GET /api/v2/health': {
    tag: 'gateway',
    summary: "Every service's health (no token needed)",
    auth: 'none',
    response: ex(
      z.object({
        status: z.enum(['up', 'degraded']),
        up: z.number().int(),
        total: z.number().int(),
        services: z.array(
          z.object({
            service: serviceName,
            status: z.enum(['up', 'down']),
            instance: z.string().optional(),
            version: z.string().optional(),
            uptimeSeconds: z.number().optional(),
            error: z.string().optional(),
          }),
        ),
      }),
      {
        status: 'up',
        up: 1,
        total: 1,
        services: [
          { service: 'gateway', status: 'up', instance: 'gateway-a-1', version: '0.1.0', uptimeSeconds: 4 },
        ],
      },
    ),
    alsoAnswers: { 503: { description: 'a service is down (same body, status degraded)' } },
  },
  'POST /api/v2/tokens': {
    tag: 'accounts',
    summary: 'Create a named operator token (the token is in this answer only)',
    body: ex(tokenInput, { name: 'ci', role: 'read-only' }),
    status: 201,
    response: ex(createdToken, {
      id: 3,
      name: 'ci',
      role: 'read-only',
      createdAt: '2026-12-02T00:30:00.000Z',
      createdBy: 'launcher',
      revokedAt: null,
      token: 'cbt_q2xW0o7m0m2d1q7N0ZKJ2mV1m8bq1x2GfBz0C3JvR2k',
    }),
  },
  'GET /api/v2/tokens': {
    tag: 'accounts',
    summary: 'List named tokens (never the tokens themselves)',
    response: ex(z.object({ tokens: z.array(tokenRow) }), {
      tokens: [
        {
          id: 1,
          name: 'launcher',
          role: 'admin',
          createdAt: '2026-12-02T00:00:00.000Z',
          createdBy: null,
          revokedAt: null,
        },
      ],
    }),
  },
  'DELETE /api/v2/tokens/:id': {
    tag: 'accounts',
    summary: 'Revoke a token (refused by every gateway within 1 s)',
    params: { id: 'token id or name' },
    response: ex(tokenRow, {
      id: 3,
      name: 'ci',
      role: 'read-only',
      createdAt: '2026-12-02T00:30:00.000Z',
      createdBy: 'launcher',
      revokedAt: '2026-12-02T00:40:00.000Z',
    }),
  },
  'GET /api/v2/audit': {
    tag: 'accounts',
    summary: 'The audit log of mutating calls, newest first',
    query: {
      token: q(z.string(), 'only calls made with this token (its name)'),
      before: q(positive, 'cursor: the `next` of the previous page'),
      limit: q(positive, 'page size (default 100, at most 1000)'),
    },
    response: ex(auditPage, {
      entries: [
        {
          id: 42,
          at: '2026-12-02T00:31:00.000Z',
          token: 'launcher',
          role: 'admin',
          method: 'PUT',
          path: '/api/v2/deployments/web/commit',
          status: 200,
          result: 'ok',
          correlationId: '0b7f3c3e-8f5e-4d8e-9f7e-2f4b1e7c9a10',
        },
      ],
      next: null,
    }),
  },
  'GET /api/v2/whoami': {
    tag: 'gateway',
    summary: "The token's role",
    response: ex(z.object({ role: z.enum(['admin', 'read-only']) }), { role: 'admin' }),
  },
  'GET /api/v2/events': {
    tag: 'gateway',
    summary: 'The EVENTS stream as server-sent events',
    description:
      'Each event: `id:` its stream sequence, `data:` its envelope (`type` is `<event>.v<version>`). `Last-Event-ID` (or `since`) resumes after that sequence. A `: heartbeat` comment every 15 s; a client too far behind gets `event: dropped` and the end of the stream. The token may also be given as `?token=`.',
    query: {
      filter: q(z.string(), 'comma-separated event type patterns: `noderole.*`, `node.changed`, `dhcp.>`'),
      since: q(z.string().regex(/^\d{1,15}$/), 'start after this stream sequence'),
      token: q(z.string(), 'the operator token, for an EventSource (which sets no headers)'),
    },
    contentType: 'text/event-stream',
    response: ex(sseDoc, 'id: 42\ndata: {"type":"node.changed.v1","data":{}}\n\n'),
  },
  'GET /api/v2/openapi.json': {
    tag: 'gateway',
    summary: 'This document (no token needed)',
    auth: 'none',
    response: ex(z.object({ openapi: z.string() }).loose(), { openapi: '3.1.1' }),
  },
  'GET /api/docs': {
    tag: 'gateway',
    summary: 'This document, rendered (no token needed)',
    auth: 'none',
    contentType: 'text/html',
    response: ex(z.string(), '<!doctype html>…'),
  },
  'GET /api/docs/:file': {
    tag: 'gateway',
    summary: "The docs page's files: swagger-ui.css, swagger-ui-bundle.js, init.js (no token needed)",
    auth: 'none',
    params: { file: 'file name' },
    contentType: 'text/html',
    response: ex(z.string(), '/* … */'),
  },
  ...webhookRouteDocs,
};
