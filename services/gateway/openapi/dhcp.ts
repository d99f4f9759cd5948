import { z } from 'zod';
import { dhcpMessages, leaseState } from '../../../shared/catalogue/index.js';
import { arrayOf, fromRpc, positive, q, type RouteDocs } from './docs.js';

/** dhcp-db's routes: leases, reservations and counters. */
export const dhcpRouteDocs: RouteDocs = {
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
};
