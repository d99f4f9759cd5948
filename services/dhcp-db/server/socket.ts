/**
 * The DHCP server's UDP socket: bound to one interface (SO_BINDTODEVICE, several sockets may share port
 * 67 on different devices), told for each datagram which interface and destination it arrived on
 * (IP_PKTINFO), and able to reply through a chosen interface and source address, including unicast to a
 * client with no address yet (a temporary ARP entry first, as dnsmasq does). Node's dgram can do none of
 * this, so it is a small N-API addon (./native, built by infra/native.mjs) behind this typed wrapper.
 */
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';
import { CrowbarError } from '../../../shared/errors.js';

export interface PacketInfo {
  ifindex: number;
  ifname: string;
  source: string;
  sourcePort: number;
  destination: string;
}

export interface SendTarget {
  address: string;
  port: number;
  ifindex?: number;
  from?: string;
  /** The client has no address yet: install an ARP entry address → mac on `ifindex` before sending. */
  mac?: Uint8Array;
}

export interface DhcpSocketStats {
  received: number;
  sent: number;
  sendErrors: number;
  callbackErrors: number;
}

export interface DhcpSocket {
  /** null: not bound to a device. */
  readonly ifname: string | null;
  /** The bound port (0 asked for → the kernel's choice). */
  readonly port: number;
  /** Synchronous; throws DhcpSocketError. */
  send(buf: Uint8Array, to: SendTarget): void;
  /** Idempotent: stops polling and closes the fd. */
  close(): void;
  readonly stats: DhcpSocketStats;
}

export class DhcpSocketError extends CrowbarError {
  /** The failing call ('SO_BINDTODEVICE', 'sendmsg', …), or 'open'/'send' for a rejected argument. */
  readonly syscall: string;
  /** The errno name, e.g. 'EPERM'; 'EINVAL' for a rejected argument. */
  readonly errno: string;
  readonly ifname: string | null;
  constructor(
    message: string,
    opts: { syscall: string; errno: string; ifname: string | null; cause?: unknown },
  ) {
    super(message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.syscall = opts.syscall;
    this.errno = opts.errno;
    this.ifname = opts.ifname;
  }
}

type NativeOnPacket = (
  buf: Buffer,
  ifindex: number,
  source: string,
  sourcePort: number,
  destination: string,
) => void;
interface NativeHandle {
  readonly __dhcpSocket: unique symbol;
}
interface NativeBinding {
  open(
    port: number,
    address: string,
    ifname: string | null,
    onPacket: NativeOnPacket,
  ): {
    handle: NativeHandle;
    port: number;
  };
  send(
    handle: NativeHandle,
    buf: Uint8Array,
    address: string,
    port: number,
    ifindex: number,
    from: string | null,
    mac: Uint8Array | null,
  ): void;
  close(handle: NativeHandle): void;
  stats(handle: NativeHandle): DhcpSocketStats;
  indexToName(ifindex: number): string | null;
}

const addonPath = './native/build/Release/dhcp_socket.node';
// Loaded once, on first use: a dlopen'ed library is process-wide anyway.
let loaded: { binding: NativeBinding } | { problem: string; errno: string; cause: unknown } | undefined;

function load() {
  if (loaded) return loaded;
  try {
    loaded = { binding: createRequire(import.meta.url)(addonPath) as NativeBinding };
  } catch (cause) {
    const missing = (cause as { code?: unknown }).code === 'MODULE_NOT_FOUND';
    loaded = {
      problem: missing
        ? 'the dhcp-db native addon is not built: run `node infra/native.mjs` (npm start and npm test do it too).'
        : `the dhcp-db native addon failed to load (${(cause as Error).message}): delete services/dhcp-db/server/native/build and run \`node infra/native.mjs\`.`,
      errno: missing ? 'ENOENT' : 'ELIBBAD',
      cause,
    };
  }
  return loaded;
}

/** null when the addon loads; otherwise one sentence saying what to run. */
export function nativeLoadProblem(): string | null {
  const l = load();
  return 'problem' in l ? l.problem : null;
}

function binding(ifname: string | null): NativeBinding {
  const l = load();
  if ('problem' in l)
    throw new DhcpSocketError(l.problem, { syscall: 'dlopen', errno: l.errno, ifname, cause: l.cause });
  return l.binding;
}

function invalid(op: 'open' | 'send', ifname: string | null, what: string): DhcpSocketError {
  return new DhcpSocketError(`${op}: ${what}`, { syscall: op, errno: 'EINVAL', ifname });
}

/** The addon throws Errors with .code/.syscall/.ifname; give them their class. */
function fromNative(op: 'open' | 'send', ifname: string | null, err: unknown): DhcpSocketError {
  const e = err as { message?: unknown; code?: unknown; syscall?: unknown; ifname?: unknown };
  return new DhcpSocketError(typeof e.message === 'string' ? e.message : String(err), {
    syscall: typeof e.syscall === 'string' ? e.syscall : op,
    errno: typeof e.code === 'string' ? e.code : 'EIO',
    ifname: typeof e.ifname === 'string' ? e.ifname : ifname,
    cause: err,
  });
}

const isInt = (n: unknown, lo: number, hi: number): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= lo && n <= hi;

export function openDhcpSocket(
  opts: { port: number; ifname?: string; address?: string },
  onPacket: (buf: Buffer, info: PacketInfo) => void,
): DhcpSocket {
  const ifname = opts.ifname ?? null;
  const address = opts.address ?? '0.0.0.0';
  if (!isInt(opts.port, 0, 65535))
    throw invalid('open', ifname, `port must be an integer 0–65535, not ${opts.port}`);
  if (!isIPv4(address))
    throw invalid('open', ifname, `address must be an IPv4 address, not ${JSON.stringify(address)}`);
  // IFNAMSIZ is 16 with the NUL; the kernel would silently truncate a longer name.
  if (ifname !== null && !/^[^\s/:\0]{1,15}$/.test(ifname))
    throw invalid(
      'open',
      ifname,
      `ifname must be an interface name of 1–15 characters, not ${JSON.stringify(ifname)}`,
    );
  const native = binding(ifname);
  const names = new Map<number, string>();
  const nameOf = (ifindex: number) => {
    let name = names.get(ifindex);
    if (name === undefined) {
      name = (ifindex > 0 ? native.indexToName(ifindex) : null) ?? '';
      if (names.size >= 64) names.clear();
      names.set(ifindex, name);
    }
    return name;
  };
  let opened: { handle: NativeHandle; port: number };
  try {
    opened = native.open(opts.port, address, ifname, (buf, ifindex, source, sourcePort, destination) =>
      onPacket(buf, { ifindex, ifname: nameOf(ifindex), source, sourcePort, destination }),
    );
  } catch (err) {
    throw fromNative('open', ifname, err);
  }
  const { handle, port } = opened;
  return {
    ifname,
    port,
    send(buf, to) {
      if (!(buf instanceof Uint8Array) || buf.length > 65507)
        throw invalid('send', ifname, 'buf must be a Uint8Array of at most 65507 bytes');
      if (!isIPv4(to.address))
        throw invalid('send', ifname, `address must be an IPv4 address, not ${JSON.stringify(to.address)}`);
      if (!isInt(to.port, 1, 65535))
        throw invalid('send', ifname, `port must be an integer 1–65535, not ${to.port}`);
      if (to.ifindex !== undefined && !isInt(to.ifindex, 1, 2 ** 31 - 1))
        throw invalid('send', ifname, `ifindex must be a positive integer, not ${to.ifindex}`);
      if (to.from !== undefined && !isIPv4(to.from))
        throw invalid('send', ifname, `from must be an IPv4 address, not ${JSON.stringify(to.from)}`);
      if (
        to.mac !== undefined &&
        (!(to.mac instanceof Uint8Array) || to.mac.length !== 6 || to.ifindex === undefined)
      )
        throw invalid(
          'send',
          ifname,
          'mac must be 6 bytes and needs ifindex (the interface the client is on)',
        );
      try {
        native.send(handle, buf, to.address, to.port, to.ifindex ?? 0, to.from ?? null, to.mac ?? null);
      } catch (err) {
        throw fromNative('send', ifname, err);
      }
    },
    close() {
      native.close(handle);
    },
    get stats() {
      return native.stats(handle);
    },
  };
}
