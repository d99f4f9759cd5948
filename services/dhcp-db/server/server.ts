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

interface ServerDeps {
  engine: Engine;
  view: () => ServedView;
  /** Named interfaces, or null for every interface with an address in a managed admin subnet. */
  interfaces: string[] | null;
  port: number;
  log: Logger;
  recheckMs?: number;
}

/**
 * The interfaces to serve now, with their IPv4 addresses: those named, else those with an address in
 * an admin network of the view. A named interface that is missing gets a line in `problems`.
 */
function servedInterfaces(
  view: ServedView,
  named: string[] | null,
  problems: Map<string, string>,
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, list] of Object.entries(networkInterfaces())) {
    const v4 = (list ?? []).filter((i) => i.family === 'IPv4').map((i) => ipToInt(i.address) ?? 0);
    if (named) {
      if (named.includes(name)) out.set(name, v4);
      continue;
    }
    const admin = v4.filter((a) =>
      view.networks.some((n) => n.category === 'admin' && inSubnet(n.subnet, a)),
    );
    if (admin.length) out.set(name, v4);
  }
  for (const name of named ?? [])
    if (!out.has(name)) problems.set(name, 'no such interface (or it has no IPv4 address)');
  return out;
}

const count = (table: Record<string, number>, key: string) => {
  table[key] = (table[key] ?? 0) + 1;
};

/**
 * The DHCP listener: one socket per served interface (SO_BINDTODEVICE, so nothing is answered
 * elsewhere), every packet parsed, handed to the engine, and its reply sent where RFC 2131 says.
 * Interfaces are re-checked on a timer and when the served networks change: an interface that gains an
 * admin-network address is served from then on, one that loses it is closed.
 */
export class DhcpServer {
  readonly stats: ServerStats = { received: 0, replied: {}, dropped: {} };
  readonly #sockets = new Map<string, { socket: DhcpSocket; addresses: number[] }>();
  readonly #problems = new Map<string, string>();
  #inFlight = 0;
  #stopped = false;
  #toldNone = false;
  readonly #dropLog;
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly deps: ServerDeps) {
    this.#dropLog = rateLimitedLog(deps.log, 'debug', 'dhcp packet dropped');
    this.#check();
    this.#timer = setInterval(() => this.#check(), deps.recheckMs ?? 5000);
  }

  inFlight(): number {
    return this.#inFlight;
  }

  interfaces(): InterfaceStatus[] {
    const out: InterfaceStatus[] = [];
    for (const [name, e] of this.#sockets)
      out.push({
        name,
        address: e.addresses[0] === undefined ? null : intToIp(e.addresses[0]),
        listening: true,
        error: null,
      });
    for (const [name, error] of this.#problems)
      if (!this.#sockets.has(name)) out.push({ name, address: null, listening: false, error });
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const e of this.#sockets.values()) e.socket.close();
    this.#sockets.clear();
  }

  /** Opens sockets on interfaces to serve now, closes those no longer served. */
  reconcile(): void {
    if (this.#stopped) return;
    const { deps } = this;
    const want = servedInterfaces(deps.view(), deps.interfaces, this.#problems);
    for (const [name, entry] of this.#sockets)
      if (!want.has(name)) {
        entry.socket.close();
        this.#sockets.delete(name);
        deps.log.info({ iface: name }, 'dhcp stopped serving interface');
      }
    for (const [name, addresses] of want) {
      const have = this.#sockets.get(name);
      if (have) have.addresses = addresses;
      else this.#open(name, addresses);
    }
  }

  #open(name: string, addresses: number[]): void {
    const { port, log } = this.deps;
    try {
      const socket = openDhcpSocket({ port, ifname: name }, (buf, info) => this.#onPacket(buf, info));
      this.#sockets.set(name, { socket, addresses });
      this.#problems.delete(name);
      log.info({ iface: name, port }, 'dhcp serving interface');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (this.#problems.get(name) !== message)
        log.warn({ iface: name, err: message }, 'cannot serve dhcp on interface');
      this.#problems.set(name, message);
    }
  }

  #check(): void {
    this.reconcile();
    // Said once: nothing is served until an interface carries an admin-network address (or is named).
    const { deps } = this;
    if (this.#sockets.size === 0 && !this.#toldNone && deps.view().networks.length > 0) {
      this.#toldNone = true;
      deps.log.warn(
        { interfaces: deps.interfaces ?? null },
        deps.interfaces
          ? 'none of CROWBAR_DHCP_INTERFACES can be served: DHCP answers nobody'
          : 'no interface carries an address in an admin network: DHCP answers nobody until one does',
      );
    }
    if (this.#sockets.size > 0) this.#toldNone = false;
  }

  #drop(reason: string, info: PacketInfo, detail?: Record<string, unknown>): void {
    count(this.stats.dropped, reason);
    this.#dropLog(reason, { reason, iface: info.ifname, source: info.source, ...detail });
  }

  #onPacket(buf: Buffer, info: PacketInfo) {
    this.stats.received++;
    const entry = this.#sockets.get(info.ifname);
    if (!entry) return this.#drop('unserved_interface', info);
    let packet: ReturnType<typeof parsePacket>;
    try {
      packet = parsePacket(buf);
    } catch (err) {
      if (err instanceof PacketError) return this.#drop(err.reason, info, { bytes: buf.length });
      throw err;
    }
    if (this.#inFlight >= maxInFlight) return this.#drop('overload', info);
    // The server's address on the interface, in a managed subnet where it has one: for a client on the
    // link it names the client's network; for a relayed one the relay's address does.
    const view = this.deps.view();
    const managed = entry.addresses.find((a) => view.networks.some((n) => inSubnet(n.subnet, a)));
    const serverAddress = managed ?? entry.addresses[0];
    if (serverAddress === undefined) return this.#drop('interface_without_address', info);
    this.#inFlight++;
    this.deps.engine
      .handle({ packet, ifname: info.ifname, ifindex: info.ifindex, serverAddress })
      .then((o) => this.#deliver(o, entry.socket, info, packet.mac))
      .catch((err: unknown) => {
        count(this.stats.dropped, 'internal');
        this.deps.log.warn({ err, mac: packet.mac, iface: info.ifname }, 'dhcp request failed');
      })
      .finally(() => {
        this.#inFlight--;
      });
  }

  #deliver(o: Outcome, socket: DhcpSocket, info: PacketInfo, mac: string) {
    if (o.kind === 'drop') return this.#drop(o.reason, info, { mac, ...o.detail });
    if (o.kind === 'done') return count(this.stats.replied, o.what);
    if (this.#stopped) return;
    try {
      socket.send(o.packet, o.to);
      count(this.stats.replied, o.kind);
      if (o.dropped.length)
        this.deps.log.debug({ mac, options: o.dropped }, 'options left out to fit the client packet size');
    } catch (err) {
      count(this.stats.dropped, 'send_failed');
      this.#dropLog('send_failed', { err, mac, to: o.to.address, iface: info.ifname });
    }
  }
}

export function startServer(deps: ServerDeps): DhcpServer {
  return new DhcpServer(deps);
}
