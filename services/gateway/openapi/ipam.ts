import { z } from 'zod';
import {
  ipamRpcs,
  networkChanges,
  networkInput,
  rangeChanges,
  rangeInput,
  routerInput,
} from '../../../shared/catalogue/index.js';
import { categoryQuery, ex, fromRpc, idOrName, positive, q, type RouteDoc, type RouteDocs } from './docs.js';

const networks = 'networks';

/** network-ipam's routes: networks, ranges, routers and allocations. */
export const ipamRouteDocs: RouteDocs = {
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
};
