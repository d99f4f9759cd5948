/**
 * dhcp-db's native UDP socket against real kernel networking: two namespaces ("clients"), each behind a
 * veth in the root namespace where the sockets live (test/helpers/veth-clients.ts). Frames are seen on
 * the client side with an AF_PACKET listener, so "reached the client's MAC" is observed, not inferred.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type DhcpSocket,
  DhcpSocketError,
  nativeLoadProblem,
  openDhcpSocket,
  type PacketInfo,
} from '../services/dhcp-db/server/socket.js';
import { type Client, macBytes, run, until, vethClients } from './helpers/veth-clients.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sockets: DhcpSocket[] = [];
let lab: ReturnType<typeof vethClients>;
let tag: string;
let net: (i: number) => string;
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
  lab = vethClients();
  ({ base, net, tag } = lab);
  a = lab.addClient('a', [base + 1, base + 3], base + 2);
  b = lab.addClient('b', [base + 17], base + 18);
});

afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

afterAll(() => {
  for (const s of sockets.splice(0)) s.close();
  lab?.cleanup();
});

describe('receiving', () => {
  it('delivers a broadcast only to the socket bound to the interface it came in on', async () => {
    const gotA: { text: string; info: PacketInfo }[] = [];
    const gotB: { text: string; info: PacketInfo }[] = [];
    const sa = open({ port: 67, ifname: a.hostIf }, gotA);
    const sb = open({ port: 67, ifname: b.hostIf }, gotB);
    expect([sa.port, sa.ifname, sb.port, sb.ifname]).toEqual([67, a.hostIf, 67, b.hostIf]);

    lab.sendFrom(a, '255.255.255.255', 67, 'from-a');
    await until(() => gotA.length >= 1, 'the broadcast from behind A');
    lab.sendFrom(b, '255.255.255.255', 67, 'from-b');
    await until(() => gotB.length >= 1, 'the broadcast from behind B');
    // A fence: anything from B that wrongly reached A's socket would be queued before this.
    lab.sendFrom(a, '255.255.255.255', 67, 'fence-a');
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
    lab.sendFrom(b, b.host, 67, 'uni-b');
    await until(() => gotB.length >= 1, 'the unicast from behind B');
    lab.sendFrom(a, a.host, 67, 'uni-a');
    await until(() => gotA.length >= 1, 'the unicast from behind A');
    lab.sendFrom(b, b.host, 67, 'fence-b');
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
    lab.sendFrom(a, '255.255.255.255', 67, 'burst', 100);
    await until(() => calls >= 100, '100 datagrams');
    lab.sendFrom(a, '255.255.255.255', 67, 'after');
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
    lab.sendFrom(a, '255.255.255.255', 67, 'closer', 5);
    await until(() => texts.length >= 1 && control.length >= 5, 'the five datagrams');
    // Whatever the closed socket still delivered would come before this later one reaches the control.
    lab.sendFrom(a, '255.255.255.255', 67, 'later');
    await until(() => control.length >= 6, 'the later datagram');
    expect(texts).toEqual(['closer#0']);
    expect(s.stats.received).toBe(1);
  });
});

describe('sending', () => {
  it('unicasts to a client without that address through an ARP entry, from the chosen source', async () => {
    const cap = await lab.capture(a, 68);
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
    expect(run('ip', ['neigh', 'show', yiaddr, 'dev', a.hostIf])).toContain(`lladdr ${a.clientMac}`);
    expect(s.stats).toMatchObject({ sent: 1, sendErrors: 0 });
  });

  it('sends through the interface given by ifindex, not the one routing would pick', async () => {
    const capA = await lab.capture(a, 68);
    const capB = await lab.capture(b, 68);
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
