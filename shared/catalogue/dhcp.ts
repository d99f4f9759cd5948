import { z } from 'zod';
import { event, rpc, type StreamDecl } from './define.js';

/**
 * Messages owned by dhcp-db: leases as they change, the reservations it serves, and its counters.
 * A lease is stored in PostgreSQL before its ACK leaves, and its event leaves through the outbox.
 */
const id = z.number().int().positive();
const mac = z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5,15}$/, 'must be a MAC such as 52:54:00:12:34:56');
export const leaseState = z.enum(['bound', 'released', 'expired', 'declined']);

export const leaseSummary = z.object({
  address: z.string(),
  mac,
  /** The node the MAC belongs to, when one is known. */
  nodeId: id.nullable(),
  node: z.string().nullable(),
  networkId: id,
  network: z.string(),
  /** The range the address came from (`dhcp` for anonymous leases, `host` for reservations). */
  range: z.string(),
  state: leaseState,
  /** When a bound lease runs out, or when a declined address leaves quarantine. */
  expiresAt: z.string(),
  hostname: z.string().nullable(),
  /** Interface the request came in on, and the relay (giaddr) when relayed. */
  interface: z.string().nullable(),
  relay: z.string().nullable(),
  updatedAt: z.string(),
});
export type LeaseSummary = z.infer<typeof leaseSummary>;

export const reservation = z.object({
  mac,
  nodeId: id,
  node: z.string(),
  hostname: z.string(),
  /** The node's admin-network `host` address (no prefix), or null while it has none. */
  address: z.string().nullable(),
  networkId: id.nullable(),
  network: z.string().nullable(),
  bootenv: z.string(),
});
export type Reservation = z.infer<typeof reservation>;

const leaseExample: z.input<typeof leaseSummary> = {
  address: '198.18.0.81',
  mac: '52:54:00:12:34:56',
  nodeId: 2,
  node: 'd52-54-00-12-34-56.crowbar.internal',
  networkId: 1,
  network: 'admin',
  range: 'host',
  state: 'bound',
  expiresAt: '2026-12-31T10:00:00.000Z',
  hostname: 'd52-54-00-12-34-56',
  interface: 'eth1',
  relay: null,
  updatedAt: '2026-12-01T10:00:00.000Z',
};
const reservationExample: z.input<typeof reservation> = {
  mac: '52:54:00:12:34:56',
  nodeId: 2,
  node: 'd52-54-00-12-34-56.crowbar.internal',
  hostname: 'd52-54-00-12-34-56',
  address: '198.18.0.81',
  networkId: 1,
  network: 'admin',
  bootenv: 'sledgehammer',
};
const leaseEvent = z.object({ lease: leaseSummary });

/** Counters of packets served and dropped, by reason. */
export const dhcpStats = z.object({
  received: z.number().int().nonnegative(),
  replied: z.record(z.string(), z.number().int().nonnegative()),
  dropped: z.record(z.string(), z.number().int().nonnegative()),
  leases: z.object({ bound: z.number().int().nonnegative(), declined: z.number().int().nonnegative() }),
  interfaces: z.array(
    z.object({
      name: z.string(),
      address: z.string().nullable(),
      listening: z.boolean(),
      error: z.string().nullable(),
    }),
  ),
  bootMap: z.object({ source: z.enum(['config', 'provisioner']), version: z.number().int() }),
  /** What leases tell clients about DNS, as learnt from dns-db (null until it has answered). */
  dns: z.object({ servers: z.array(z.string()), domain: z.string().nullable() }),
});

export const dhcpMessages = {
  leaseAcked: event('dhcp.lease.acked', 1, leaseEvent, { lease: leaseExample }),
  leaseReleased: event('dhcp.lease.released', 1, leaseEvent, {
    lease: { ...leaseExample, state: 'released' },
  }),
  leaseExpired: event('dhcp.lease.expired', 1, leaseEvent, { lease: { ...leaseExample, state: 'expired' } }),
  leaseDeclined: event('dhcp.lease.declined', 1, leaseEvent, {
    lease: { ...leaseExample, state: 'declined' },
  }),
  /** An address was offered; at most one per MAC per minute, and a bounded number per second overall. */
  leaseOffered: event(
    'dhcp.lease.offered',
    1,
    z.object({
      mac,
      address: z.string(),
      nodeId: id.nullable(),
      network: z.string(),
      interface: z.string().nullable(),
      relay: z.string().nullable(),
      bootFile: z.string().nullable(),
    }),
    {
      mac: '52:54:00:12:34:56',
      address: '198.18.0.21',
      nodeId: null,
      network: 'admin',
      interface: 'eth1',
      relay: null,
      bootFile: 'http://198.18.0.10:8091/boot/52-54-00-12-34-56.ipxe',
    },
  ),
  leaseList: rpc(
    'dhcp-db',
    'lease.list',
    1,
    z.object({
      state: leaseState.optional(),
      mac: mac.optional(),
      network: z.string().max(64).optional(),
      nodeId: id.optional(),
      /** Cursor: the last address of the previous page. */
      after: z.string().max(64).optional(),
      limit: z.number().int().positive().max(5000).default(500),
    }),
    z.object({ leases: z.array(leaseSummary), next: z.string().nullable() }),
    { request: { state: 'bound' }, response: { leases: [leaseExample], next: null } },
  ),
  reservationList: rpc(
    'dhcp-db',
    'reservation.list',
    1,
    z.object({ nodeId: id.optional(), mac: mac.optional() }),
    z.object({ reservations: z.array(reservation) }),
    { request: {}, response: { reservations: [reservationExample] } },
  ),
  /** Operator release: the address is free for the next client. */
  leaseRelease: rpc(
    'dhcp-db',
    'lease.release',
    1,
    z.object({ address: z.string().min(7).max(15) }),
    leaseSummary,
    { request: { address: '198.18.0.21' }, response: { ...leaseExample, state: 'released' } },
  ),
  stats: rpc('dhcp-db', 'stats', 1, z.object({}), dhcpStats, {
    request: {},
    response: {
      received: 10,
      replied: { offer: 4, ack: 4, nak: 1 },
      dropped: { truncated: 1 },
      leases: { bound: 4, declined: 0 },
      interfaces: [{ name: 'eth1', address: '198.18.0.10', listening: true, error: null }],
      bootMap: { source: 'config', version: 0 },
      dns: { servers: ['198.18.0.10'], domain: 'crowbar.internal' },
    },
  }),
};
export const dhcpStreams: StreamDecl[] = [];
