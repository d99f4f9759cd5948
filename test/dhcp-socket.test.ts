/**
 * dhcp-db's native UDP socket against real kernel networking: two namespaces ("clients"), each behind a
 * veth in the root namespace where the sockets live. Addresses only from 198.18.101.0/24 (a free /27 of
 * it), names prefixed cbsk plus a random tag. Frames are seen on the client side with an AF_PACKET
 * listener, so "reached the client's MAC" is observed, not inferred.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type DhcpSocket,
  DhcpSocketError,
  nativeLoadProblem,
  openDhcpSocket,
  type PacketInfo,
} from '../services/dhcp-db/server/socket.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tag = randomBytes(3).toString('hex');

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
const ip = (args: string[]) => run('ip', args);

interface Client {
  ns: string;
  hostIf: string;
  ifindex: number;
  hostMac: string;
  /** The root side's address (and A's second one, to show `from` picks the source). */
  host: string;
  clientIp: string;
  clientMac: string;
}

/** A /27 of 198.18.101.0/24 that nothing in the root namespace uses yet: its base (0, 32, … 224). */
function freeBlock(): number {
  const octets = [...ip(['-4', '-o', 'addr', 'show']).matchAll(/inet 198\.18\.101\.(\d+)\//g)].map((m) =>
    Number(m[1]),
  );
  const free = [0, 32, 64, 96, 128, 160, 192, 224].filter((b) => !octets.some((o) => o >= b && o < b + 32));
  const pick = free[(randomBytes(1)[0] as number) % Math.max(free.length, 1)];
  if (pick === undefined) throw new Error('no free /27 left in 198.18.101.0/24');
  return pick;
}

const namespaces: string[] = [];
const links: string[] = [];
const children: ChildProcess[] = [];
const sockets: DhcpSocket[] = [];
const net = (i: number) => `198.18.101.${i}`;

function addClient(letter: string, hostAddrs: number[], clientAddr: number): Client {
  const ns = `cbsk-${tag}-${letter}`;
  const hostIf = `cbsk${tag}${letter}`;
  const peer = `cbsk${tag}p${letter}`;
  ip(['netns', 'add', ns]);
  namespaces.push(ns);
  ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer]);
  links.push(hostIf);
  ip(['link', 'set', peer, 'netns', ns]);
  ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
  for (const a of hostAddrs) ip(['addr', 'add', `${net(a)}/28`, 'dev', hostIf]);
  ip(['-n', ns, 'addr', 'add', `${net(clientAddr)}/28`, 'dev', 'eth0']);
  ip(['link', 'set', hostIf, 'up']);
  ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  const hostLink = JSON.parse(ip(['-j', 'link', 'show', 'dev', hostIf]))[0] as {
    ifindex: number;
    address: string;
  };
  const clientLink = JSON.parse(ip(['-j', '-n', ns, 'link', 'show', 'dev', 'eth0']))[0] as {
    address: string;
  };
  return {
    ns,
    hostIf,
    ifindex: hostLink.ifindex,
    hostMac: hostLink.address,
    host: net(hostAddrs[0] as number),
    clientIp: net(clientAddr),
    clientMac: clientLink.address,
  };
}

const macBytes = (mac: string) => Uint8Array.from(mac.split(':').map((h) => Number.parseInt(h, 16)));

/** Sends `count` datagrams "<text>#<i>" from the client's eth0, port 68. */
const SEND = `
import socket, sys
dst, port, text, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
s.bind(('0.0.0.0', 68))
for i in range(count):
    s.sendto(('%s#%d' % (text, i)).encode(), (dst, port))
`;
function sendFrom(c: Client, dst: string, port: number, text: string, count = 1) {
  run('ip', ['netns', 'exec', c.ns, 'python3', '-c', SEND, dst, String(port), text, String(count)]);
}

/** Prints one JSON line per IPv4/UDP frame to `dport` arriving on eth0, after a first line "ready". */
const CAPTURE = `
import json, socket, struct, sys
dport = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(('eth0', 0))
print('ready', flush=True)
while True:
    f, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING or len(f) < 42 or f[23] != 17:
        continue
    u = 14 + (f[14] & 15) * 4
    sport, dp = struct.unpack('!HH', f[u:u + 4])
    if dp != dport:
        continue
    print(json.dumps({'dstMac': f[0:6].hex(':'), 'srcMac': f[6:12].hex(':'),
        'src': socket.inet_ntoa(f[26:30]), 'dst': socket.inet_ntoa(f[30:34]),
        'sport': sport, 'dport': dp, 'payload': f[u + 8:].decode('latin-1')}), flush=True)
`;
interface Frame {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: string;
}
async function capture(c: Client, dport: number) {
  const child = spawn('ip', ['netns', 'exec', c.ns, 'python3', '-u', '-c', CAPTURE, String(dport)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const frames: Frame[] = [];
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`capture in ${c.ns} exited with ${code}`)));
    lines.on('line', (l) => (l === 'ready' ? resolve() : frames.push(JSON.parse(l) as Frame)));
  });
  return {
    frames,
    async frame(payload: string) {
      await until(() => frames.some((f) => f.payload === payload), `a frame "${payload}" in ${c.ns}`);
      return frames.find((f) => f.payload === payload)!;
    },
  };
}

/** Waits for something that must happen; its absence after 5 s is a failure, never a pass. */
async function until(done: () => boolean, what: string, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function open(opts: Parameters<typeof openDhcpSocket>[0], got: { text: string; info: PacketInfo }[] = []) {
  const s = openDhcpSocket(opts, (buf, info) => got.push({ text: buf.toString(), info }));
  sockets.push(s);
  return s;
}

let a: Client;
let b: Client;
let base: number;

beforeAll(() => {
  if (process.getuid?.() !== 0)
    throw new Error('the dhcp socket tests need root (network namespaces, port 67)');
  // `npx vitest` does not go through bootstrap.mjs, so build the addon here when it is stale.
  try {
    run(process.execPath, [`${root}infra/native.mjs`]);
  } catch (err) {
    throw new Error(`building the addon failed: ${(err as { stderr?: string }).stderr ?? err}`);
  }
  const problem = nativeLoadProblem();
  if (problem) throw new Error(problem);
  base = freeBlock();
  a = addClient('a', [base + 1, base + 3], base + 2);
  b = addClient('b', [base + 17], base + 18);
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

afterAll(() => {
  for (const s of sockets.splice(0)) s.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const ns of namespaces.splice(0)) {
    try {
      for (const pid of ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean))
        process.kill(Number(pid), 'SIGKILL');
    } catch {
      // namespace or process already gone
    }
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
  for (const l of links.splice(0)) {
    try {
      ip(['link', 'del', l]);
    } catch {
      // went with its peer's namespace
    }
  }
});

describe('receiving', () => {
  it('delivers a broadcast only to the socket bound to the interface it came in on', async () => {
    const gotA: { text: string; info: PacketInfo }[] = [];
    const gotB: { text: string; info: PacketInfo }[] = [];
    const sa = open({ port: 67, ifname: a.hostIf }, gotA);
    const sb = open({ port: 67, ifname: b.hostIf }, gotB);
    expect([sa.port, sa.ifname, sb.port, sb.ifname]).toEqual([67, a.hostIf, 67, b.hostIf]);

    sendFrom(a, '255.255.255.255', 67, 'from-a');
    await until(() => gotA.length >= 1, 'the broadcast from behind A');
    sendFrom(b, '255.255.255.255', 67, 'from-b');
    await until(() => gotB.length >= 1, 'the broadcast from behind B');
    // A fence: anything from B that wrongly reached A's socket would be queued before this.
    sendFrom(a, '255.255.255.255', 67, 'fence-a');
    await until(() => gotA.length >= 2, 'the second broadcast from behind A');

    expect(gotA.map((g) => g.text)).toEqual(['from-a#0', 'fence-a#0']);
    expect(gotB.map((g) => g.text)).toEqual(['from-b#0']);
    expect(gotA[0]!.info).toEqual({
      ifindex: a.ifindex,
      ifname: a.hostIf,
      source: a.clientIp,
      sourcePort: 68,
      destination: '255.255.255.255',
    });
    expect(gotB[0]!.info).toMatchObject({
      ifindex: b.ifindex,
      ifname: b.hostIf,
      destination: '255.255.255.255',
    });
    expect(sa.stats).toEqual({ received: 2, sent: 0, sendErrors: 0, callbackErrors: 0 });
  });

  it('keeps two sockets on port 67 of different devices apart for unicast too, with the destination', async () => {
    const gotA: { text: string; info: PacketInfo }[] = [];
    const gotB: { text: string; info: PacketInfo }[] = [];
    open({ port: 67, ifname: a.hostIf }, gotA);
    open({ port: 67, ifname: b.hostIf }, gotB);
    sendFrom(b, b.host, 67, 'uni-b');
    await until(() => gotB.length >= 1, 'the unicast from behind B');
    sendFrom(a, a.host, 67, 'uni-a');
    await until(() => gotA.length >= 1, 'the unicast from behind A');
    sendFrom(b, b.host, 67, 'fence-b');
    await until(() => gotB.length >= 2, 'the second unicast from behind B');
    expect(gotA.map((g) => [g.text, g.info.destination, g.info.ifname])).toEqual([
      ['uni-a#0', a.host, a.hostIf],
    ]);
    expect(gotB.map((g) => [g.text, g.info.destination, g.info.ifname])).toEqual([
      ['uni-b#0', b.host, b.hostIf],
      ['fence-b#0', b.host, b.hostIf],
    ]);
  });

  it('drains a burst larger than one wake-up, and a throwing callback is counted, not fatal', async () => {
    let calls = 0;
    const texts: string[] = [];
    const s = openDhcpSocket({ port: 67, ifname: a.hostIf }, (buf) => {
      calls++;
      texts.push(buf.toString());
      if (calls % 10 === 0) throw new Error('handler bug');
    });
    sockets.push(s);
    sendFrom(a, '255.255.255.255', 67, 'burst', 100);
    await until(() => calls >= 100, '100 datagrams');
    sendFrom(a, '255.255.255.255', 67, 'after');
    await until(() => calls >= 101, 'a datagram after the throws');
    expect(texts).toEqual([...Array.from({ length: 100 }, (_, i) => `burst#${i}`), 'after#0']);
    expect(s.stats).toEqual({ received: 101, sent: 0, sendErrors: 0, callbackErrors: 10 });
  });

  it('lets the callback close its own socket', async () => {
    const control: { text: string; info: PacketInfo }[] = [];
    open({ port: 67, ifname: a.hostIf }, control);
    const texts: string[] = [];
    const s = openDhcpSocket({ port: 67, ifname: a.hostIf }, (buf) => {
      texts.push(buf.toString());
      s.close();
    });
    sockets.push(s);
    sendFrom(a, '255.255.255.255', 67, 'closer', 5);
    await until(() => texts.length >= 1 && control.length >= 5, 'the five datagrams');
    // Whatever the closed socket still delivered would come before this later one reaches the control.
    sendFrom(a, '255.255.255.255', 67, 'later');
    await until(() => control.length >= 6, 'the later datagram');
    expect(texts).toEqual(['closer#0']);
    expect(s.stats.received).toBe(1);
  });
});

describe('sending', () => {
  it('unicasts to a client without that address through an ARP entry, from the chosen source', async () => {
    const cap = await capture(a, 68);
    const yiaddr = net(base + 10); // in A's /28, configured nowhere
    const s = open({ port: 67, ifname: a.hostIf });
    const secondary = net(base + 3);
    s.send(Buffer.from('offer-1'), {
      address: yiaddr,
      port: 68,
      ifindex: a.ifindex,
      from: secondary,
      mac: macBytes(a.clientMac),
    });
    expect(await cap.frame('offer-1')).toEqual({
      dstMac: a.clientMac,
      srcMac: a.hostMac,
      src: secondary,
      dst: yiaddr,
      sport: 67,
      dport: 68,
      payload: 'offer-1',
    });
    expect(ip(['neigh', 'show', yiaddr, 'dev', a.hostIf])).toContain(`lladdr ${a.clientMac}`);
    expect(s.stats).toMatchObject({ sent: 1, sendErrors: 0 });
  });

  it('sends through the interface given by ifindex, not the one routing would pick', async () => {
    const capA = await capture(a, 68);
    const capB = await capture(b, 68);
    const s = open({ port: 0 }); // bound to no device
    expect(s.ifname).toBeNull();
    expect(s.port).toBeGreaterThan(0);
    const inBsSubnet = net(base + 20); // routing alone would send this out of B
    s.send(Buffer.from('via-a'), {
      address: inBsSubnet,
      port: 68,
      ifindex: a.ifindex,
      mac: macBytes(a.clientMac),
    });
    s.send(Buffer.from('bcast-b'), {
      address: '255.255.255.255',
      port: 68,
      ifindex: b.ifindex,
      from: b.host,
    });
    expect(await capA.frame('via-a')).toMatchObject({
      dstMac: a.clientMac,
      src: a.host,
      dst: inBsSubnet,
      sport: s.port,
    });
    expect(await capB.frame('bcast-b')).toMatchObject({
      dstMac: 'ff:ff:ff:ff:ff:ff',
      srcMac: b.hostMac,
      src: b.host,
      dst: '255.255.255.255',
    });
    expect(capB.frames.map((f) => f.payload)).not.toContain('via-a');
  });
});

describe('bad input', () => {
  const rejects = (fn: () => unknown, expected: Partial<DhcpSocketError>) => {
    let thrown: unknown;
    try {
      fn();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DhcpSocketError);
    expect(thrown).toMatchObject(expected);
  };

  it('names the call and interface when the kernel refuses', () => {
    const nope = `cbsk${tag}zz`;
    rejects(() => open({ port: 67, ifname: nope }), {
      syscall: 'SO_BINDTODEVICE',
      errno: 'ENODEV',
      ifname: nope,
      message: `SO_BINDTODEVICE ${nope}: No such device`,
    });
    const s = open({ port: 0 });
    rejects(
      () =>
        s.send(Buffer.from('x'), {
          address: net(base + 11),
          port: 68,
          ifindex: 2 ** 31 - 1,
          mac: new Uint8Array(6),
        }),
      { syscall: 'if_indextoname', errno: 'ENXIO' },
    );
    expect(s.stats.sendErrors).toBe(1);
  });

  it('rejects arguments before they reach the kernel', () => {
    for (const port of [70000, -1, 1.5, Number.NaN])
      rejects(() => open({ port }), { errno: 'EINVAL', syscall: 'open' });
    rejects(() => open({ port: 0, ifname: 'x'.repeat(16) }), { errno: 'EINVAL' });
    rejects(() => open({ port: 0, ifname: '' }), { errno: 'EINVAL' });
    rejects(() => open({ port: 0, address: 'not-an-ip' }), { errno: 'EINVAL' });
    const s = open({ port: 0 });
    const buf = Buffer.from('x');
    rejects(() => s.send(buf, { address: 'not-an-address', port: 68 }), { errno: 'EINVAL', syscall: 'send' });
    rejects(() => s.send(buf, { address: '198.18.101.300', port: 68 }), { errno: 'EINVAL' });
    rejects(() => s.send(buf, { address: net(base + 2), port: 0 }), { errno: 'EINVAL' });
    rejects(() => s.send(buf, { address: net(base + 2), port: 68, mac: new Uint8Array(6) }), {
      errno: 'EINVAL',
    });
    rejects(
      () => s.send(buf, { address: net(base + 2), port: 68, ifindex: a.ifindex, mac: new Uint8Array(5) }),
      {
        errno: 'EINVAL',
      },
    );
    rejects(() => s.send(new Uint8Array(65508), { address: net(base + 2), port: 68 }), { errno: 'EINVAL' });
    expect(s.stats.sent).toBe(0);
    s.close();
    s.close();
    rejects(() => s.send(buf, { address: net(base + 2), port: 68 }), { syscall: 'sendmsg', errno: 'EBADF' });
  });

  it('survives junk handed straight to the addon', () => {
    const native = createRequire(import.meta.url)(
      `${root}services/dhcp-db/server/native/build/Release/dhcp_socket.node`,
    ) as Record<string, (...args: unknown[]) => unknown>;
    expect(() => native.send!({}, Buffer.from('x'), '1.2.3.4', 1, 0, null, null)).toThrow(
      /not a DhcpSocket handle/,
    );
    expect(() => native.close!(null)).toThrow(/not a DhcpSocket handle/);
    expect(() => native.stats!()).toThrow(/stats\(handle\)/);
    expect(() => native.open!(67, '0.0.0.0', 'lo', 'not a function')).toThrow(/onPacket/);
    expect(() => native.open!(67, '192.168.100.2001', null, () => {})).toThrow(/address/); // would truncate to a valid one
    expect(() => native.open!(67, '0.0.0.0', 'lo\0x', () => {})).toThrow(/ifname/);
    expect(native.indexToName!(2 ** 31 - 1)).toBeNull();
    expect(native.indexToName!(a.ifindex)).toBe(a.hostIf);
  });

  it('reports EPERM from SIOCSARP with the interface when not privileged', () => {
    // A child without any capability: the ARP ioctl needs CAP_NET_ADMIN.
    const addon = `${root}services/dhcp-db/server/native/build/Release/dhcp_socket.node`;
    const script = `
      const m = require(${JSON.stringify(addon)});
      const { handle } = m.open(0, '0.0.0.0', null, () => {});
      try { m.send(handle, Buffer.from('x'), ${JSON.stringify(net(base + 12))}, 68, ${a.ifindex}, null, Buffer.alloc(6)); }
      catch (e) { console.log(JSON.stringify({ message: e.message, code: e.code, syscall: e.syscall, ifname: e.ifname })); }
      m.close(handle);`;
    const out = run('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--inh-caps=-all',
      process.execPath,
      '-e',
      script,
    ]);
    expect(JSON.parse(out)).toEqual({
      message: `SIOCSARP ${a.hostIf}: Operation not permitted`,
      code: 'EPERM',
      syscall: 'SIOCSARP',
      ifname: a.hostIf,
    });
  });
});
