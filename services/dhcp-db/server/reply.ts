import { chooseBoot, classifyClient } from '../domain/boot.js';
import { inSubnet, intToIp, maskOf } from '../domain/ipv4.js';
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
} from '../domain/packet.js';
import type { NetworkView, ReservationView } from '../domain/view.js';
import type { EngineDeps } from './engine.js';

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

/** An encoded reply and where it goes; `dropped` lists the options that did not fit. */
export interface Reply {
  kind: 'offer' | 'ack' | 'nak' | 'inform';
  packet: Buffer;
  to: Destination;
  dropped: number[];
}

/** What building a reply reads: the served settings, dns-db's answer, the boot map, and who to tell of an offer. */
export type ReplyDeps = Pick<EngineDeps, 'dns' | 'bootMap' | 'offered' | 'settings'>;

type Options = Array<[number, Uint8Array]>;

export const ZERO = '0.0.0.0';
const CLIENT_PORT = 68;
const SERVER_PORT = 67;

/** Builds an OFFER, ACK or INFORM answer for `address` on `net`; an OFFER is also reported through `offered`. */
export function reply(
  deps: ReplyDeps,
  a: Arrival,
  kind: 'offer' | 'ack' | 'inform',
  net: NetworkView,
  res: ReservationView | undefined,
  address: number,
  leaseSeconds: number | null,
): Reply {
  const p = a.packet;
  const server = intToIp(a.serverAddress);
  const type = kind === 'offer' ? M.OFFER : M.ACK;
  const opts: Options = [
    [MSG_TYPE, u8Opt(type)],
    [SERVER_ID, ipOpt(server)],
  ];
  if (leaseSeconds !== null) opts.push(...leaseOptions(leaseSeconds));
  opts.push(...networkOptions(deps, net, res));
  const { boot, client } = bootOf(deps, p, res, server);
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

/** A NAK saying `why` (option 56). */
export function nak(a: Arrival, why: string): Reply {
  const p = a.packet;
  const opts: Options = [
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

/** Lease time with its renewal (T1, half) and rebinding (T2, seven eighths) times. */
function leaseOptions(leaseSeconds: number): Options {
  return [
    [LEASE_TIME, u32Opt(leaseSeconds)],
    [T1, u32Opt(Math.floor(leaseSeconds / 2))],
    [T2, u32Opt(Math.floor((leaseSeconds * 7) / 8))],
  ];
}

/** The network's settings: mask, routers, the DNS servers on this subnet, domain, hostname, broadcast, MTU, NTP. */
function networkOptions(deps: ReplyDeps, net: NetworkView, res: ReservationView | undefined): Options {
  const { settings } = deps;
  const opts: Options = [[SUBNET_MASK, ipOpt(intToIp(maskOf(net.subnet.prefix)))]];
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
  return opts;
}

/** What this client boots: from its reservation's bootenv, or the discovery bootenv for a MAC no node claims. */
function bootOf(deps: ReplyDeps, p: DhcpPacket, res: ReservationView | undefined, server: string) {
  const map = deps.bootMap();
  const client = classifyClient(p);
  const boot = chooseBoot(client, res?.bootenv ?? deps.settings.discoveryBootenv, map, {
    server: map.tftpServer ?? server,
    httpBase: `http://${server}:${map.httpPort}`,
    mac: p.mac.replaceAll(':', '-'),
  });
  return { boot, client };
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
