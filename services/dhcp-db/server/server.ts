import { networkInterfaces } from 'node:os';
import type { Logger } from '../../../shared/log.js';
import { rateLimitedLog } from '../../../shared/rate-limited-log.js';
import { inSubnet, intToIp, ipToInt } from '../domain/ipv4.js';
import { PacketError, parsePacket } from '../domain/packet.js';
import type { ServedView } from '../domain/view.js';
import type { Engine, Outcome } from './engine.js';
import { type DhcpSocket, openDhcpSocket, type PacketInfo } from './socket.js';

export interface InterfaceStatus {
  name: string;
  address: string | null;
  listening: boolean;
  error: string | null;
}

export interface ServerStats {
  received: number;
  replied: Record<string, number>;
  dropped: Record<string, number>;
}

/** Requests waiting for their lease to be written; past this, new ones are dropped ('overload'). */
const maxInFlight = 20_000;

/**
 * The DHCP listener: one socket per served interface (SO_BINDTODEVICE, so nothing is answered
 * elsewhere), every packet parsed, handed to the engine, and its reply sent where RFC 2131 says.
 * Interfaces are re-checked on a timer and when the served networks change: an interface that gains an
 * admin-network address is served from then on, one that loses it is closed.
 */
export function startServer(deps: {
  engine: Engine;
  view: () => ServedView;
  /** Named interfaces, or null for every interface with an address in a managed admin subnet. */
  interfaces: string[] | null;
  port: number;
  log: Logger;
  recheckMs?: number;
}) {
  const { engine, log } = deps;
  const sockets = new Map<string, { socket: DhcpSocket; addresses: number[] }>();
  const problems = new Map<string, string>();
  const stats: ServerStats = { received: 0, replied: {}, dropped: {} };
  let inFlight = 0;
  let stopped = false;
  const dropLog = rateLimitedLog(log, 'debug', 'dhcp packet dropped');

  const count = (table: Record<string, number>, key: string) => {
    table[key] = (table[key] ?? 0) + 1;
  };
  const drop = (reason: string, info: PacketInfo, detail?: Record<string, unknown>) => {
    count(stats.dropped, reason);
    dropLog(reason, { reason, iface: info.ifname, source: info.source, ...detail });
  };

  /** The interfaces to serve now, with their IPv4 addresses. */
  function wanted(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    const view = deps.view();
    for (const [name, list] of Object.entries(networkInterfaces())) {
      const v4 = (list ?? []).filter((i) => i.family === 'IPv4').map((i) => ipToInt(i.address) ?? 0);
      if (deps.interfaces) {
        if (deps.interfaces.includes(name)) out.set(name, v4);
        continue;
      }
      const admin = v4.filter((a) =>
        view.networks.some((n) => n.category === 'admin' && inSubnet(n.subnet, a)),
      );
      if (admin.length) out.set(name, v4);
    }
    for (const name of deps.interfaces ?? [])
      if (!out.has(name)) problems.set(name, 'no such interface (or it has no IPv4 address)');
    return out;
  }

  function onPacket(buf: Buffer, info: PacketInfo) {
    stats.received++;
    const entry = sockets.get(info.ifname);
    if (!entry) return drop('unserved_interface', info);
    let packet: ReturnType<typeof parsePacket>;
    try {
      packet = parsePacket(buf);
    } catch (err) {
      if (err instanceof PacketError) return drop(err.reason, info, { bytes: buf.length });
      throw err;
    }
    if (inFlight >= maxInFlight) return drop('overload', info);
    // The server's address on the interface, in a managed subnet where it has one: for a client on the
    // link it names the client's network; for a relayed one the relay's address does.
    const view = deps.view();
    const managed = entry.addresses.find((a) => view.networks.some((n) => inSubnet(n.subnet, a)));
    const serverAddress = managed ?? entry.addresses[0];
    if (serverAddress === undefined) return drop('interface_without_address', info);
    inFlight++;
    engine
      .handle({ packet, ifname: info.ifname, ifindex: info.ifindex, serverAddress })
      .then((o) => deliver(o, entry.socket, info, packet.mac))
      .catch((err: unknown) => {
        count(stats.dropped, 'internal');
        log.warn({ err, mac: packet.mac, iface: info.ifname }, 'dhcp request failed');
      })
      .finally(() => {
        inFlight--;
      });
  }

  function deliver(o: Outcome, socket: DhcpSocket, info: PacketInfo, mac: string) {
    if (o.kind === 'drop') return drop(o.reason, info, { mac, ...o.detail });
    if (o.kind === 'done') return count(stats.replied, o.what);
    if (stopped) return;
    try {
      socket.send(o.packet, o.to);
      count(stats.replied, o.kind);
      if (o.dropped.length)
        log.debug({ mac, options: o.dropped }, 'options left out to fit the client packet size');
    } catch (err) {
      count(stats.dropped, 'send_failed');
      dropLog('send_failed', { err, mac, to: o.to.address, iface: info.ifname });
    }
  }

  function reconcile() {
    if (stopped) return;
    const want = wanted();
    for (const [name, entry] of sockets)
      if (!want.has(name)) {
        entry.socket.close();
        sockets.delete(name);
        log.info({ iface: name }, 'dhcp stopped serving interface');
      }
    for (const [name, addresses] of want) {
      const have = sockets.get(name);
      if (have) {
        have.addresses = addresses;
        continue;
      }
      try {
        const socket = openDhcpSocket({ port: deps.port, ifname: name }, onPacket);
        sockets.set(name, { socket, addresses });
        problems.delete(name);
        log.info({ iface: name, port: deps.port }, 'dhcp serving interface');
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (problems.get(name) !== message)
          log.warn({ iface: name, err: message }, 'cannot serve dhcp on interface');
        problems.set(name, message);
      }
    }
  }

  let toldNone = false;
  const check = () => {
    reconcile();
    // Said once: nothing is served until an interface carries an admin-network address (or is named).
    if (sockets.size === 0 && !toldNone && deps.view().networks.length > 0) {
      toldNone = true;
      log.warn(
        { interfaces: deps.interfaces ?? null },
        deps.interfaces
          ? 'none of CROWBAR_DHCP_INTERFACES can be served: DHCP answers nobody'
          : 'no interface carries an address in an admin network: DHCP answers nobody until one does',
      );
    }
    if (sockets.size > 0) toldNone = false;
  };
  check();
  const timer = setInterval(check, deps.recheckMs ?? 5000);

  return {
    stats,
    reconcile,
    interfaces(): InterfaceStatus[] {
      const out: InterfaceStatus[] = [];
      for (const [name, e] of sockets)
        out.push({
          name,
          address: e.addresses[0] === undefined ? null : intToIp(e.addresses[0]),
          listening: true,
          error: null,
        });
      for (const [name, error] of problems)
        if (!sockets.has(name)) out.push({ name, address: null, listening: false, error });
      return out.sort((a, b) => (a.name < b.name ? -1 : 1));
    },
    inFlight: () => inFlight,
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const e of sockets.values()) e.socket.close();
      sockets.clear();
    },
  };
}
export type DhcpServer = ReturnType<typeof startServer>;
