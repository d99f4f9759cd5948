import type { LeaseWrite } from '../db/store.js';
import { type BootMap, chooseBoot, classifyClient } from '../domain/boot.js';
import { inSubnet, intToIp, ipToInt, maskOf } from '../domain/ipv4.js';
import {
  BROADCAST,
  DNS,
  DOMAIN_NAME,
  DOMAIN_SEARCH,
  domainSearchOpt,
  HOSTNAME,
  IPXE_ENCAP,
  ipOpt,
  ipsOpt,
  LEASE_TIME,
  MESSAGE,
  MSG_TYPE,
  MTU,
  NTP,
  ROUTER,
  SERVER_ID,
  SUBNET_MASK,
  strOpt,
  T1,
  T2,
  u8Opt,
  u16Opt,
  u32Opt,
  VENDOR_CLASS,
} from '../domain/options.js';
import {
  type DhcpPacket,
  echoedOptions,
  encodeReply,
  DhcpMessageType as M,
  maxMessageSize,
  orderByRequest,
  parameterList,
  replyHeader,
  requestedAddress,
  serverIdentifier,
} from '../domain/packet.js';
import {
  type NetworkView,
  networkHolding,
  type ReservationView,
  rangeHolding,
  type ServedView,
} from '../domain/view.js';
import type { LeaseTable } from './lease-table.js';

/** A request as it arrived: the parsed packet and the interface it came in on. */
export interface Arrival {
  packet: DhcpPacket;
  ifname: string;
  ifindex: number;
  /** This server's IPv4 address on that interface: the server identifier and next-server. */
  serverAddress: number;
}

/** Where a reply goes (RFC 2131 §4.1): the relay, the client's address, broadcast, or unicast by MAC. */
export interface Destination {
  address: string;
  port: number;
  ifindex?: number;
  from: string;
  mac?: Uint8Array;
}

export type Outcome =
  | { kind: 'offer' | 'ack' | 'nak' | 'inform'; packet: Buffer; to: Destination; dropped: number[] }
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

const ZERO = '0.0.0.0';
const CLIENT_PORT = 68;
const SERVER_PORT = 67;

/**
 * The DHCPv4 server's decisions (RFC 2131 §4.3): which address a client gets, whether a REQUEST is
 * ACKed or NAKed, and where the reply goes. Nothing here touches a socket; the database is reached only
 * through `bind`, `decline` and `release`.
 */
export function createEngine(deps: EngineDeps) {
  const { leases, settings } = deps;
  const declines = new Map<string, { count: number; since: number }>();

  function networkOf(a: Arrival): NetworkView | undefined {
    const view = deps.view();
    const relay = a.packet.giaddr !== ZERO ? ipToInt(a.packet.giaddr) : null;
    return networkHolding(view, relay ?? a.serverAddress);
  }

  /** The address this MAC should have on `net`, if it is allowed to have `candidate` (or any, when omitted). */
  function acceptable(
    net: NetworkView,
    mac: string,
    res: ReservationView | undefined,
    address: number,
  ): boolean {
    const reserved = res?.addresses.get(net.id);
    if (reserved) return address === reserved.address && !leases.heldByOther(address, mac);
    const range = rangeHolding(net, address);
    if (!range?.allowAnon) return false;
    return leases.usable(deps.view(), net, address, mac);
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
    net: NetworkView,
    mac: string,
    res: ReservationView | undefined,
    requested: number | null,
  ) {
    const view = deps.view();
    const reserved = res?.addresses.get(net.id);
    if (reserved) return leases.heldByOther(reserved.address, mac) ? null : reserved.address;
    const mine = leases.leaseOf(mac, net.id);
    if (mine && acceptable(net, mac, res, mine.address)) return mine.address;
    const offered = leases.offeredTo(mac);
    if (offered !== undefined && acceptable(net, mac, res, offered)) return offered;
    if (requested !== null && inSubnet(net.subnet, requested) && acceptable(net, mac, res, requested))
      return requested;
    return leases.freeAddress(view, net, mac)?.address ?? null;
  }

  function destination(a: Arrival, kind: 'offer' | 'ack' | 'nak' | 'inform', yiaddr: string): Destination {
    const p = a.packet;
    const from = intToIp(a.serverAddress);
    if (p.giaddr !== ZERO) return { address: p.giaddr, port: SERVER_PORT, from };
    if (kind !== 'nak' && p.ciaddr !== ZERO)
      return { address: p.ciaddr, port: CLIENT_PORT, ifindex: a.ifindex, from };
    if (kind === 'nak' || p.broadcast || yiaddr === ZERO)
      return { address: '255.255.255.255', port: CLIENT_PORT, ifindex: a.ifindex, from };
    return { address: yiaddr, port: CLIENT_PORT, ifindex: a.ifindex, from, mac: p.chaddr };
  }

  function reply(
    a: Arrival,
    kind: 'offer' | 'ack' | 'inform',
    net: NetworkView,
    res: ReservationView | undefined,
    address: number,
    leaseSeconds: number | null,
  ): Outcome {
    const p = a.packet;
    const server = intToIp(a.serverAddress);
    const type = kind === 'offer' ? M.OFFER : M.ACK;
    const opts: Array<[number, Uint8Array]> = [
      [MSG_TYPE, u8Opt(type)],
      [SERVER_ID, ipOpt(server)],
    ];
    if (leaseSeconds !== null) {
      opts.push([LEASE_TIME, u32Opt(leaseSeconds)]);
      opts.push([T1, u32Opt(Math.floor(leaseSeconds / 2))]);
      opts.push([T2, u32Opt(Math.floor((leaseSeconds * 7) / 8))]);
    }
    opts.push([SUBNET_MASK, ipOpt(intToIp(maskOf(net.subnet.prefix)))]);
    if (net.routers.length) opts.push([ROUTER, ipsOpt(net.routers.map(intToIp))]);
    const dns = deps.dns();
    const servers = dns.servers.filter((s) => inSubnet(net.subnet, s));
    if (servers.length) opts.push([DNS, ipsOpt(servers.map(intToIp))]);
    if (dns.domain) {
      opts.push([DOMAIN_NAME, strOpt(dns.domain)]);
      opts.push([DOMAIN_SEARCH, domainSearchOpt([dns.domain])]);
    }
    if (res) opts.push([HOSTNAME, strOpt(res.hostname)]);
    opts.push([BROADCAST, ipOpt(intToIp(net.subnet.last))]);
    if (settings.mtu !== null) opts.push([MTU, u16Opt(settings.mtu)]);
    if (settings.ntp.length) opts.push([NTP, ipsOpt(settings.ntp.map(intToIp))]);

    const map = deps.bootMap();
    const client = classifyClient(p);
    const boot = chooseBoot(client, res?.bootenv ?? settings.discoveryBootenv, map, {
      server: map.tftpServer ?? server,
      httpBase: `http://${server}:${map.httpPort}`,
      mac: p.mac.replaceAll(':', '-'),
    });
    if (boot.vendorClassEcho) opts.push([VENDOR_CLASS, strOpt(boot.vendorClassEcho)]);
    // iPXE's own settings (option 175): no-pxedhcp=1, so it does not wait seconds for a ProxyDHCP offer.
    if (client.ipxe) opts.push([IPXE_ENCAP, Uint8Array.of(176, 1, 1)]);
    opts.push(...echoedOptions(p));
    const yiaddr = kind === 'inform' ? ZERO : intToIp(address);
    const { packet, dropped } = encodeReply(
      {
        ...replyHeader(p),
        ciaddr: kind === 'inform' ? p.ciaddr : ZERO,
        yiaddr,
        siaddr: boot.file ? boot.siaddr : ZERO,
        ...(boot.file ? { file: boot.file } : {}),
        options: orderByRequest(opts, parameterList(p)),
      },
      maxMessageSize(p),
    );
    if (kind === 'offer')
      deps.offered({
        mac: p.mac,
        address: yiaddr,
        nodeId: res?.nodeId ?? null,
        network: net.name,
        iface: a.ifname,
        relay: p.giaddr === ZERO ? null : p.giaddr,
        bootFile: boot.file,
      });
    return { kind, packet, to: destination(a, kind, yiaddr), dropped };
  }

  function nak(a: Arrival, why: string): Outcome {
    const p = a.packet;
    const opts: Array<[number, Uint8Array]> = [
      [MSG_TYPE, u8Opt(M.NAK)],
      [SERVER_ID, ipOpt(intToIp(a.serverAddress))],
      [MESSAGE, strOpt(why)],
      ...echoedOptions(p),
    ];
    // A NAK relayed back must be broadcast by the relay (RFC 2131 §4.3.2).
    const flags = p.giaddr !== ZERO ? p.flags | 0x8000 : p.flags;
    const { packet } = encodeReply(
      { ...replyHeader(p), flags, ciaddr: ZERO, yiaddr: ZERO, siaddr: ZERO, options: opts },
      576,
    );
    return { kind: 'nak', packet, to: destination(a, 'nak', ZERO), dropped: [] };
  }

  async function commit(
    a: Arrival,
    net: NetworkView,
    res: ReservationView | undefined,
    address: number,
  ): Promise<Outcome> {
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
    return reply(a, 'ack', net, res, address, seconds);
  }

  async function request(a: Arrival, net: NetworkView, res: ReservationView | undefined): Promise<Outcome> {
    const p = a.packet;
    const sid = serverIdentifier(p);
    const requested = requestedAddress(p);
    if (sid !== null) {
      // SELECTING: the client answers an OFFER; if it chose another server, our offer is free again.
      if (ipToInt(sid) !== a.serverAddress) {
        leases.forgetOffer(p.mac);
        return { kind: 'done', what: 'ignored' };
      }
      const want = requested === null ? null : ipToInt(requested);
      if (want === null) return { kind: 'drop', reason: 'request_without_address' };
      if (!acceptable(net, p.mac, res, want)) return nak(a, 'address not available for this client');
      return commit(a, net, res, want);
    }
    if (requested !== null && p.ciaddr === ZERO) {
      // INIT-REBOOT: the client asks to keep an address it remembers.
      const want = ipToInt(requested);
      if (want === null || !inSubnet(net.subnet, want)) return nak(a, 'address is not on this network');
      if (!acceptable(net, p.mac, res, want)) return nak(a, 'address not available for this client');
      return commit(a, net, res, want);
    }
    if (p.ciaddr !== ZERO) {
      // RENEWING (unicast) or REBINDING (broadcast).
      const have = ipToInt(p.ciaddr);
      if (have === null || !inSubnet(net.subnet, have)) return nak(a, 'address is not on this network');
      if (!acceptable(net, p.mac, res, have)) return nak(a, 'address no longer yours');
      return commit(a, net, res, have);
    }
    return { kind: 'drop', reason: 'request_without_address' };
  }

  /** At most 5 DECLINEs per MAC per 10 minutes; only DECLINEs of an address the MAC holds are counted. */
  function declineAllowed(mac: string): boolean {
    const now = deps.now();
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

  return {
    async handle(a: Arrival): Promise<Outcome> {
      const p = a.packet;
      const net = networkOf(a);
      if (!net)
        return { kind: 'drop', reason: p.giaddr !== ZERO ? 'unmanaged_relay' : 'unmanaged_interface' };
      const res = deps.view().byMac.get(p.mac);
      switch (p.messageType) {
        case M.DISCOVER: {
          const req = requestedAddress(p);
          const address = chooseOffer(net, p.mac, res, req === null ? null : ipToInt(req));
          if (address === null)
            return {
              kind: 'drop',
              reason: res?.addresses.get(net.id) ? 'reserved_address_in_use' : 'pool_exhausted',
            };
          leases.offer(address, p.mac, settings.offerHoldMs);
          return reply(a, 'offer', net, res, address, leaseTimeOf(net, res, address).seconds);
        }
        case M.REQUEST:
          return request(a, net, res);
        case M.DECLINE: {
          const addr = requestedAddress(p);
          const v = addr === null ? null : ipToInt(addr);
          if (v === null) return { kind: 'drop', reason: 'decline_without_address' };
          const held = leases.get(v);
          if (!held || held.mac !== p.mac || held.state !== 'bound' || held.expiresAt <= deps.now())
            return { kind: 'drop', reason: 'decline_not_held' };
          if (!declineAllowed(p.mac)) return { kind: 'drop', reason: 'decline_rate' };
          return (await deps.decline(addr!, p.mac))
            ? { kind: 'done', what: 'declined' }
            : { kind: 'drop', reason: 'decline_not_held' };
        }
        case M.RELEASE: {
          const held = ipToInt(p.ciaddr);
          const l = held === null ? undefined : leases.get(held);
          if (!l || l.mac !== p.mac || l.state !== 'bound')
            return { kind: 'drop', reason: 'release_not_held' };
          return (await deps.release(p.ciaddr, p.mac))
            ? { kind: 'done', what: 'released' }
            : { kind: 'drop', reason: 'release_not_held' };
        }
        case M.INFORM: {
          const have = ipToInt(p.ciaddr);
          if (have === null || have === 0 || !inSubnet(net.subnet, have))
            return { kind: 'drop', reason: 'inform_without_address' };
          return reply(a, 'inform', net, res, have, null);
        }
        default:
          return { kind: 'drop', reason: 'not_a_client_message' };
      }
    },
  };
}
export type Engine = ReturnType<typeof createEngine>;
