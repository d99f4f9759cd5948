import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { until as sharedUntil } from './inventory.js';

/**
 * Namespaces behind veths of the root namespace, for tests of sockets that live there: each "client"
 * has eth0 with an address of a free /27 of 198.18.101.0/24 (its /28 shared with the root side), Python
 * senders bound to it, and an AF_PACKET listener that shows the frames that reached it. Names are
 * `cbsk<tag>…`; cleanup() removes all of it, also after a failure.
 */

export const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
const ip = (args: string[]) => run('ip', args);

export interface Client {
  ns: string;
  hostIf: string;
  ifindex: number;
  hostMac: string;
  /** The root side's address (and A's second one, to show `from` picks the source). */
  host: string;
  clientIp: string;
  clientMac: string;
}

export const macBytes = (mac: string) => Uint8Array.from(mac.split(':').map((h) => Number.parseInt(h, 16)));

export interface Frame {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: string;
}

/** Waits for something that must happen; its absence after `ms` is a failure, never a pass. */
export const until = (done: () => boolean, what: string, ms = 5000) => sharedUntil(what, done, ms, 5);

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

export function vethClients() {
  const tag = randomBytes(3).toString('hex');
  const namespaces: string[] = [];
  const links: string[] = [];
  const children: ChildProcess[] = [];
  const base = freeBlock();
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

  function sendFrom(c: Client, dst: string, port: number, text: string, count = 1) {
    run('ip', ['netns', 'exec', c.ns, 'python3', '-c', SEND, dst, String(port), text, String(count)]);
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

  function cleanup() {
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
  }

  return { tag, base, net, addClient, sendFrom, capture, cleanup };
}
