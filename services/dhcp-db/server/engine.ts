import type { LeaseWrite } from '../db/store.js';
import type { BootMap } from '../domain/boot.js';
import { inSubnet, intToIp, ipToInt } from '../domain/ipv4.js';
import { DhcpMessageType as M, requestedAddress, serverIdentifier } from '../domain/packet.js';
import {
  type NetworkView,
  networkHolding,
  type ReservationView,
  rangeHolding,
  type ServedView,
} from '../domain/view.js';
import type { LeaseTable } from './lease-table.js';
import { type Arrival, nak, type Reply, reply, ZERO } from './reply.js';

export type { Arrival, Destination } from './reply.js';

export type Outcome =
  | Reply
  | { kind: 'done'; what: 'declined' | 'released' | 'ignored' }
  | { kind: 'drop'; reason: string; detail?: Record<string, unknown> };

export interface EngineSettings {
  offerHoldMs: number;
  declineHoldMs: number;
  /** Bootenv of MACs no node claims. */
  discoveryBootenv: string;
  mtu: number | null;
  ntp: number[];
}

export interface EngineDeps {
  view(): ServedView;
  leases: LeaseTable;
  /** Writes the lease (group-committed); resolves true once it is durable, false if the database refused it. */
  bind(item: LeaseWrite): Promise<boolean>;
  decline(address: string, mac: string): Promise<boolean>;
  release(address: string, mac: string): Promise<boolean>;
  bootMap(): BootMap & { httpPort: number; tftpServer: string | null };
  /** dns-db's servers and domain (null until dns-db has answered). */
  dns(): { servers: number[]; domain: string | null };
  offered(e: {
    mac: string;
    address: string;
    nodeId: number | null;
    network: string;
    iface: string;
    relay: string | null;
    bootFile: string | null;
  }): void;
  settings: EngineSettings;
  now(): number;
}

/** What the engine's parts share: its dependencies and the DECLINE count per MAC. */
interface EngineCtx {
  deps: EngineDeps;
  leases: LeaseTable;
  declines: Map<string, { count: number; since: number }>;
}

/** A client's message on the network that serves it, with the reservation of its MAC (if any). */
interface Ask {
  a: Arrival;
  net: NetworkView;
  res: ReservationView | undefined;
}

/**
 * The DHCPv4 server's decisions (RFC 2131 §4.3): which address a client gets, whether a REQUEST is
 * ACKed or NAKed, and where the reply goes. Nothing here touches a socket; the database is reached only
 * through `bind`, `decline` and `release`.
 */
export function createEngine(deps: EngineDeps) {
  const ctx: EngineCtx = { deps, leases: deps.leases, declines: new Map() };
  return {
    async handle(a: Arrival): Promise<Outcome> {
      const p = a.packet;
      const net = networkOf(ctx, a);
      if (!net)
        return { kind: 'drop', reason: p.giaddr !== ZERO ? 'unmanaged_relay' : 'unmanaged_interface' };
      const ask: Ask = { a, net, res: deps.view().byMac.get(p.mac) };
      switch (p.messageType) {
        case M.DISCOVER:
          return discover(ctx, ask);
        case M.REQUEST:
          return request(ctx, ask);
        case M.DECLINE:
          return decline(ctx, ask);
        case M.RELEASE:
          return release(ctx, ask);
        case M.INFORM:
          return inform(ctx, ask);
        default:
          return { kind: 'drop', reason: 'not_a_client_message' };
      }
    },
  };
}
export type Engine = ReturnType<typeof createEngine>;

function discover(ctx: EngineCtx, { a, net, res }: Ask): Outcome {
  const p = a.packet;
  const req = requestedAddress(p);
  const address = chooseOffer(ctx, net, p.mac, res, req === null ? null : ipToInt(req));
  if (address === null)
    return {
      kind: 'drop',
      reason: res?.addresses.get(net.id) ? 'reserved_address_in_use' : 'pool_exhausted',
    };
  ctx.leases.offer(address, p.mac, ctx.deps.settings.offerHoldMs);
  return reply(ctx.deps, a, 'offer', net, res, address, leaseTimeOf(net, res, address).seconds);
}

async function request(ctx: EngineCtx, ask: Ask): Promise<Outcome> {
  const { a, net, res } = ask;
  const p = a.packet;
  const sid = serverIdentifier(p);
  const requested = requestedAddress(p);
  if (sid !== null) {
    // SELECTING: the client answers an OFFER; if it chose another server, our offer is free again.
    if (ipToInt(sid) !== a.serverAddress) {
      ctx.leases.forgetOffer(p.mac);
      return { kind: 'done', what: 'ignored' };
    }
    const want = requested === null ? null : ipToInt(requested);
    if (want === null) return { kind: 'drop', reason: 'request_without_address' };
    if (!acceptable(ctx, net, p.mac, res, want)) return nak(a, 'address not available for this client');
    return commit(ctx, ask, want);
  }
  if (requested !== null && p.ciaddr === ZERO) {
    // INIT-REBOOT: the client asks to keep an address it remembers.
    const want = ipToInt(requested);
    if (want === null || !inSubnet(net.subnet, want)) return nak(a, 'address is not on this network');
    if (!acceptable(ctx, net, p.mac, res, want)) return nak(a, 'address not available for this client');
    return commit(ctx, ask, want);
  }
  if (p.ciaddr !== ZERO) {
    // RENEWING (unicast) or REBINDING (broadcast).
    const have = ipToInt(p.ciaddr);
    if (have === null || !inSubnet(net.subnet, have)) return nak(a, 'address is not on this network');
    if (!acceptable(ctx, net, p.mac, res, have)) return nak(a, 'address no longer yours');
    return commit(ctx, ask, have);
  }
  return { kind: 'drop', reason: 'request_without_address' };
}

async function decline(ctx: EngineCtx, { a }: Ask): Promise<Outcome> {
  const p = a.packet;
  const addr = requestedAddress(p);
  const v = addr === null ? null : ipToInt(addr);
  if (v === null) return { kind: 'drop', reason: 'decline_without_address' };
  const held = ctx.leases.get(v);
  if (!held || held.mac !== p.mac || held.state !== 'bound' || held.expiresAt <= ctx.deps.now())
    return { kind: 'drop', reason: 'decline_not_held' };
  if (!declineAllowed(ctx, p.mac)) return { kind: 'drop', reason: 'decline_rate' };
  return (await ctx.deps.decline(addr!, p.mac))
    ? { kind: 'done', what: 'declined' }
    : { kind: 'drop', reason: 'decline_not_held' };
}

async function release(ctx: EngineCtx, { a }: Ask): Promise<Outcome> {
  const p = a.packet;
  const held = ipToInt(p.ciaddr);
  const l = held === null ? undefined : ctx.leases.get(held);
  if (!l || l.mac !== p.mac || l.state !== 'bound') return { kind: 'drop', reason: 'release_not_held' };
  return (await ctx.deps.release(p.ciaddr, p.mac))
    ? { kind: 'done', what: 'released' }
    : { kind: 'drop', reason: 'release_not_held' };
}

function inform(ctx: EngineCtx, { a, net, res }: Ask): Outcome {
  const have = ipToInt(a.packet.ciaddr);
  if (have === null || have === 0 || !inSubnet(net.subnet, have))
    return { kind: 'drop', reason: 'inform_without_address' };
  return reply(ctx.deps, a, 'inform', net, res, have, null);
}

function networkOf(ctx: EngineCtx, a: Arrival): NetworkView | undefined {
  const view = ctx.deps.view();
  const relay = a.packet.giaddr !== ZERO ? ipToInt(a.packet.giaddr) : null;
  return networkHolding(view, relay ?? a.serverAddress);
}

/** Whether this MAC may have `address` on `net`: its reservation, or a free address in an anonymous range. */
function acceptable(
  ctx: EngineCtx,
  net: NetworkView,
  mac: string,
  res: ReservationView | undefined,
  address: number,
): boolean {
  const reserved = res?.addresses.get(net.id);
  if (reserved) return address === reserved.address && !ctx.leases.heldByOther(address, mac);
  const range = rangeHolding(net, address);
  if (!range?.allowAnon) return false;
  return ctx.leases.usable(ctx.deps.view(), net, address, mac);
}

function leaseTimeOf(
  net: NetworkView,
  res: ReservationView | undefined,
  address: number,
): { seconds: number; range: string } {
  const reserved = res?.addresses.get(net.id);
  const range = rangeHolding(net, address);
  if (reserved && reserved.address === address)
    return { seconds: range?.boundLeaseTime ?? 2_592_000, range: range?.name ?? reserved.range };
  return { seconds: range?.anonLeaseTime ?? 60, range: range?.name ?? 'dhcp' };
}

function chooseOffer(
  ctx: EngineCtx,
  net: NetworkView,
  mac: string,
  res: ReservationView | undefined,
  requested: number | null,
) {
  const { leases } = ctx;
  const view = ctx.deps.view();
  const reserved = res?.addresses.get(net.id);
  if (reserved) return leases.heldByOther(reserved.address, mac) ? null : reserved.address;
  const mine = leases.leaseOf(mac, net.id);
  if (mine && acceptable(ctx, net, mac, res, mine.address)) return mine.address;
  const offered = leases.offeredTo(mac);
  if (offered !== undefined && acceptable(ctx, net, mac, res, offered)) return offered;
  if (requested !== null && inSubnet(net.subnet, requested) && acceptable(ctx, net, mac, res, requested))
    return requested;
  return leases.freeAddress(view, net, mac)?.address ?? null;
}

async function commit(ctx: EngineCtx, { a, net, res }: Ask, address: number): Promise<Outcome> {
  const { deps } = ctx;
  const p = a.packet;
  const { seconds, range } = leaseTimeOf(net, res, address);
  const ok = await deps.bind({
    address: intToIp(address),
    mac: p.mac,
    networkId: net.id,
    range,
    nodeId: res?.nodeId ?? null,
    hostname: res?.hostname ?? null,
    expiresAt: new Date(deps.now() + seconds * 1000),
    iface: a.ifname,
    relay: p.giaddr === ZERO ? null : p.giaddr,
  });
  if (!ok) return nak(a, 'address taken by another client');
  return reply(deps, a, 'ack', net, res, address, seconds);
}

/** At most 5 DECLINEs per MAC per 10 minutes; only DECLINEs of an address the MAC holds are counted. */
function declineAllowed(ctx: EngineCtx, mac: string): boolean {
  const { declines } = ctx;
  const now = ctx.deps.now();
  const d = declines.get(mac);
  if (d && now - d.since <= 600_000) return ++d.count <= 5;
  declines.delete(mac);
  declines.set(mac, { count: 1, since: now });
  // Bounded without forgetting live counts: entries are in insertion (= window start) order, so the
  // oldest go first — only those whose window is over, unless the table is past twice its bound.
  if (declines.size > 10_000)
    for (const [m, e] of declines) {
      if (declines.size <= 10_000 || (now - e.since <= 600_000 && declines.size <= 20_000)) break;
      declines.delete(m);
    }
  return true;
}
