import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parsePacket } from '../../services/dhcp-db/domain/packet.js';

/**
 * A DHCP relay agent (RFC 1542 §4) for tests: a process in a network namespace, bound to giaddr:67,
 * that unicasts BOOTREQUESTs (giaddr set, hops 1) to the server and takes its replies on giaddr:67. It
 * drives many exchanges without raw sockets and does not block the server under test.
 *
 * Test side: `createRelayLab` (a bridge and namespaces named `cbdf…`), `startRelay` (the agent as a
 * child, commands in and events out as JSON lines), `buildRequest` / `parseReply` (via the server's codec).
 * Agent side: this file run as `node --import tsx dhcp-relay.ts <giaddr> <server>`.
 */

/* ---------------- packets ---------------- */

export const DISCOVER = 1;
export const OFFER = 2;
export const REQUEST = 3;
export const DECLINE = 4;
export const ACK = 5;
export const NAK = 6;
export const RELEASE = 7;
export const INFORM = 8;
const typeNames: Record<number, string> = { 2: 'offer', 5: 'ack', 6: 'nak' };

export interface RequestSpec {
  /** Option 53; null leaves it out. */
  type: number | null;
  mac: string;
  xid: number;
  giaddr: string;
  ciaddr?: string;
  /** Option 50. */
  requested?: string;
  /** Option 54. */
  server?: string;
  /** After 53, 50 and 54, before END. */
  options?: Array<[number, Uint8Array]>;
  op?: number;
  htype?: number;
  hlen?: number;
  hops?: number;
  flags?: number;
  magic?: number;
  /** false: no END option. */
  end?: boolean;
}

const quad = (a: string) => Buffer.from(a.split('.').map(Number));

/** A BOOTREQUEST as a client or relay sends it, padded to 300 bytes like most clients. */
export function buildRequest(s: RequestSpec): Buffer {
  const opts: Array<[number, Uint8Array]> = [];
  if (s.type !== null) opts.push([53, Buffer.from([s.type])]);
  if (s.requested) opts.push([50, quad(s.requested)]);
  if (s.server) opts.push([54, quad(s.server)]);
  opts.push(...(s.options ?? []));
  const body = Buffer.concat(opts.map(([c, v]) => Buffer.concat([Buffer.from([c, v.length]), v])));
  const out = Buffer.alloc(Math.max(300, 240 + body.length + 1));
  out[0] = s.op ?? 1;
  out[1] = s.htype ?? 1;
  out[2] = s.hlen ?? 6;
  out[3] = s.hops ?? 1;
  out.writeUInt32BE(s.xid >>> 0, 4);
  out.writeUInt16BE(s.flags ?? 0, 10);
  quad(s.ciaddr ?? '0.0.0.0').copy(out, 12);
  quad(s.giaddr).copy(out, 24);
  Buffer.from(s.mac.replaceAll(':', ''), 'hex').copy(out, 28);
  out.writeUInt32BE(s.magic ?? 0x63825363, 236);
  body.copy(out, 240);
  out[240 + body.length] = s.end === false ? 0 : 255;
  return out;
}

export interface Reply {
  type: 'offer' | 'ack' | 'nak' | 'other';
  xid: number;
  mac: string;
  yiaddr: string;
  /** Option 54 and option 56. */
  server: string | null;
  message: string | null;
}

/** A BOOTREPLY, read with the server's own parser (it takes BOOTREQUESTs, so op is flipped first). */
export function parseReply(buf: Buffer): Reply | null {
  if (buf.length < 240 || buf[0] !== 2) return null;
  const copy = Buffer.from(buf);
  copy[0] = 1;
  try {
    const p = parsePacket(copy);
    const sid = p.options.get(54);
    return {
      type: (typeNames[p.messageType] as Reply['type'] | undefined) ?? 'other',
      xid: p.xid,
      mac: p.mac,
      yiaddr: p.yiaddr,
      server: sid?.length === 4 ? [...sid].join('.') : null,
      message: p.options.get(56)?.toString('latin1') ?? null,
    };
  } catch {
    return null;
  }
}

/** mulberry32: small, fast, good enough to make a fuzz run repeatable from its seed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { next, int, bytes, pick: <T>(xs: readonly T[]) => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof prng>;

const macOf = (base: string, i: number) =>
  `${base}:${[(i >>> 16) & 255, (i >>> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
const randomMac = (r: Rng) =>
  `02${[...r.bytes(5)].map((b) => `:${b.toString(16).padStart(2, '0')}`).join('')}`;

/** A plausible request of any type with a random mix of options, then 1–3 mutations of its bytes. */
export function fuzzPacket(r: Rng, ctx: { giaddr: string; server: string; addresses: string[] }): Buffer {
  const options: Array<[number, Uint8Array]> = [];
  if (r.next() < 0.7) options.push([55, Buffer.from([1, 3, 6, 12, 15, 28, 42, 66, 67, 119, 175])]);
  if (r.next() < 0.4) options.push([61, Buffer.concat([Buffer.from([1]), r.bytes(6)])]);
  if (r.next() < 0.4) options.push([60, Buffer.from('PXEClient:Arch:00007:UNDI:003016')]);
  if (r.next() < 0.3) options.push([93, r.bytes(2)]);
  if (r.next() < 0.3) options.push([57, r.bytes(2)]);
  if (r.next() < 0.3) options.push([12, Buffer.from(`fuzz${r.int(1000)}`)]);
  if (r.next() < 0.2) options.push([77, r.bytes(r.int(40))]);
  if (r.next() < 0.2) options.push([82, Buffer.concat([Buffer.from([1, 4]), r.bytes(4)])]);
  if (r.next() < 0.1) options.push([52, Buffer.from([1 + r.int(3)])]);
  const type = r.pick([DISCOVER, DISCOVER, REQUEST, REQUEST, DECLINE, RELEASE, INFORM, OFFER, r.int(256)]);
  const address = r.pick(ctx.addresses);
  const b = buildRequest({
    type,
    mac: randomMac(r),
    xid: r.int(2 ** 32),
    giaddr: ctx.giaddr,
    ...(r.next() < 0.3 ? { ciaddr: address } : {}),
    ...(r.next() < 0.6 ? { requested: address } : {}),
    ...(r.next() < 0.5 ? { server: ctx.server } : {}),
    options,
  });
  let out: Buffer = b;
  for (let m = 1 + r.int(3); m > 0; m--) out = mutate(r, out);
  return out;
}

function mutate(r: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (r.int(8)) {
    case 0: // leave it whole: most requests reach the engine
      return out;
    case 1: // bit flips anywhere
      for (let n = 1 + r.int(16); n > 0; n--) {
        const at = r.int(out.length);
        out[at] = out[at]! ^ (1 << r.int(8));
      }
      return out;
    case 2: // bytes set at random, mostly in the header
      for (let n = 1 + r.int(8); n > 0; n--) out[r.int(Math.min(out.length, 260))] = r.int(256);
      return out;
    case 3:
      return out.subarray(0, r.int(out.length + 1));
    case 4: // appended garbage, sometimes past the 4096-byte limit
      return Buffer.concat([out, r.bytes(r.next() < 0.1 ? 4000 + r.int(2000) : r.int(600))]);
    case 5: {
      // random options after the cookie: codes, lengths (some running past the end), maybe END
      const parts: Buffer[] = [out.subarray(0, 240)];
      if (r.next() < 0.8) parts.push(Buffer.from([53, 1, 1 + r.int(8)]));
      for (let n = r.int(40); n > 0; n--) {
        const len = r.int(r.next() < 0.1 ? 256 : 24);
        const real = r.next() < 0.95 ? len : r.int(len + 1);
        parts.push(Buffer.from([1 + r.int(254), len]), r.bytes(real));
      }
      if (r.next() < 0.7) parts.push(Buffer.from([255]));
      return Buffer.concat(parts);
    }
    case 6: // overload: sname and file full of option bytes
      r.bytes(192).copy(out, 44);
      return Buffer.concat([out.subarray(0, 240), Buffer.from([52, 1, r.int(5)]), out.subarray(240)]);
    default: // header fields the parser checks
      out[r.int(4)] = r.int(4) === 0 ? r.int(256) : r.pick([0, 1, 2, 6, 16, 17]);
      return out;
  }
}

/* ---------------- the agent (child side) ---------------- */

export type RelayCommand =
  | {
      cmd: 'dora';
      id: string;
      /** Explicit MACs (repeat one to re-lease), or `macBase` (3 bytes) + `count` distinct ones. */
      macs?: string[];
      macBase?: string;
      count?: number;
      /** Exchanges started per second, and at most this many open at once. */
      rate: number;
      concurrency: number;
      timeoutMs: number;
      /** DECLINE each ACKed address, then wait this long before the next exchange. */
      decline?: boolean;
      afterDeclineMs?: number;
    }
  | { cmd: 'send'; id: string; packets: string[]; waitMs: number }
  | {
      cmd: 'fuzz';
      id: string;
      seed: number;
      count: number;
      rate: number;
      /** Addresses the fuzzed requests name (ciaddr, option 50). */
      addresses: string[];
      /** Option 54 of the requests; default: the address they are sent to. */
      serverId?: string;
    }
  | {
      cmd: 'flood';
      id: string;
      kind: 'discover' | 'decline';
      count: number;
      rate: number;
      addresses: string[];
      serverId?: string;
    }
  | { cmd: 'stop' };

/** An ACK or NAK a `dora` run saw; `t` is when (ms since the epoch). */
export interface LeaseEvent {
  ev: 'ack' | 'nak';
  id: string;
  mac: string;
  address: string;
  t: number;
  message: string | null;
}

export type RelayEvent =
  | { ev: 'ready' }
  | LeaseEvent
  | { ev: 'reply'; id: string; index: number; reply: Reply }
  | { ev: 'done'; id: string; [k: string]: unknown }
  | { ev: 'error'; message: string };

async function agent(giaddr: string, server: string) {
  const out = (e: RelayEvent) => process.stdout.write(`${JSON.stringify(e)}\n`);
  const socket = createSocket('udp4');
  const waiting = new Map<number, (r: Reply) => void>();
  let stray: Record<string, number> = {};
  let stopped = false;
  socket.on('message', (buf) => {
    const r = parseReply(buf);
    const w = r && waiting.get(r.xid);
    if (r && w) w(r);
    else {
      const k = r?.type ?? 'unparsed';
      stray[k] = (stray[k] ?? 0) + 1;
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: giaddr, port: 67 }, () => resolve());
  });
  let sendErrors = 0;
  socket.on('error', () => sendErrors++);
  const send = (b: Buffer) =>
    socket.send(b, 67, server, (err) => {
      if (err) sendErrors++;
    });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const await1 = (xid: number, ms: number) =>
    new Promise<Reply | null>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(xid);
        resolve(null);
      }, ms);
      waiting.set(xid, (r) => {
        clearTimeout(timer);
        waiting.delete(xid);
        resolve(r);
      });
    });
  const xid = () => randomBytes(4).readUInt32BE(0);

  /** Calls `one(i)` for i < count, `rate` starts a second, at most `open` unfinished (no catching up). */
  async function paced(count: number, rate: number, open: number, one: (i: number) => Promise<void> | void) {
    let next = Date.now();
    const running = new Set<Promise<void>>();
    for (let i = 0; i < count && !stopped; i++) {
      while (running.size >= open) await Promise.race(running);
      next = Math.max(next, Date.now());
      if (next > Date.now()) await sleep(next - Date.now());
      next += 1000 / rate;
      const p = Promise.resolve(one(i)).finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.all(running);
  }

  async function dora(c: Extract<RelayCommand, { cmd: 'dora' }>) {
    const n = { offers: 0, acks: 0, naks: 0, noOffer: 0, noAck: 0, declines: 0 };
    const macs = c.macs ?? Array.from({ length: c.count ?? 0 }, (_, i) => macOf(c.macBase ?? '02:df:00', i));
    await paced(macs.length, c.rate, c.concurrency, async (i) => {
      const mac = macs[i]!;
      const x1 = xid();
      const offer = await1(x1, c.timeoutMs);
      send(buildRequest({ type: DISCOVER, mac, xid: x1, giaddr }));
      const o = await offer;
      if (o?.type !== 'offer') return void n.noOffer++;
      n.offers++;
      const x2 = xid();
      const answer = await1(x2, c.timeoutMs);
      const sid = o.server ?? server;
      send(buildRequest({ type: REQUEST, mac, xid: x2, giaddr, requested: o.yiaddr, server: sid }));
      const a = await answer;
      if (a?.type !== 'ack' && a?.type !== 'nak') return void n.noAck++;
      n[a.type === 'ack' ? 'acks' : 'naks']++;
      out({ ev: a.type, id: c.id, mac, address: a.yiaddr, t: Date.now(), message: a.message });
      if (a.type === 'ack' && c.decline) {
        send(buildRequest({ type: DECLINE, mac, xid: xid(), giaddr, requested: a.yiaddr, server: sid }));
        n.declines++;
        await sleep(c.afterDeclineMs ?? 0);
      }
    });
    out({ ev: 'done', id: c.id, ...n, stopped });
  }

  async function flood(c: Extract<RelayCommand, { cmd: 'fuzz' | 'flood' }>) {
    const r = prng(c.cmd === 'fuzz' ? c.seed : xid());
    const sid = c.serverId ?? server;
    stray = {};
    let sent = 0;
    let bytes = 0;
    const startErrors = sendErrors;
    const t0 = Date.now();
    // Paced in 5 ms ticks: at most what the rate allows so far, never a burst of more than 200.
    while (sent < c.count && !stopped) {
      const due = Math.min(c.count, Math.floor(((Date.now() - t0) * c.rate) / 1000) + 1);
      for (let k = 0; sent < due && k < 200; k++, sent++) {
        const address = r.pick(c.addresses);
        const b =
          c.cmd === 'fuzz'
            ? fuzzPacket(r, { giaddr, server: sid, addresses: c.addresses })
            : buildRequest({
                type: c.kind === 'discover' ? DISCOVER : DECLINE,
                mac: randomMac(r),
                xid: r.int(2 ** 32),
                giaddr,
                ...(c.kind === 'decline' ? { requested: address, server: sid } : {}),
              });
        bytes += b.length;
        send(b);
      }
      await sleep(5);
    }
    await sleep(300); // the last replies
    out({ ev: 'done', id: c.id, sent, bytes, sendErrors: sendErrors - startErrors, replies: stray, stopped });
  }

  async function sendAll(c: Extract<RelayCommand, { cmd: 'send' }>) {
    const replies = c.packets.map((hex, index) => {
      const b = Buffer.from(hex, 'hex');
      const x = b.length >= 8 ? b.readUInt32BE(4) : -1;
      const got = x >= 0 ? await1(x, c.waitMs) : Promise.resolve(null);
      send(b);
      return got.then((reply) => reply && out({ ev: 'reply', id: c.id, index, reply }));
    });
    await Promise.all(replies);
    out({ ev: 'done', id: c.id, sent: c.packets.length });
  }

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const c = JSON.parse(line) as RelayCommand;
    if (c.cmd === 'stop') {
      stopped = true;
      return;
    }
    stopped = false;
    const run = c.cmd === 'dora' ? dora(c) : c.cmd === 'send' ? sendAll(c) : flood(c);
    run.catch((err: unknown) => out({ ev: 'error', message: String(err) }));
  });
  lines.on('close', () => {
    socket.close();
    process.exit(0);
  });
  out({ ev: 'ready' });
}

/* ---------------- the test side ---------------- */

export interface Relay {
  /** Every event so far, oldest first. */
  events: RelayEvent[];
  /** Sends a command; resolves with its `done` event. */
  run(c: Exclude<RelayCommand, { cmd: 'stop' }>): Promise<Extract<RelayEvent, { ev: 'done' }>>;
  /** Ends the commands under way (they still report `done`). */
  stop(): void;
  acks(id?: string): LeaseEvent[];
  close(): void;
}

const here = fileURLToPath(import.meta.url);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Starts the agent in `ns`, bound to giaddr:67 and talking to `server`:67. */
export async function startRelay(ns: string, giaddr: string, server: string): Promise<Relay> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', here, giaddr, server],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const events: RelayEvent[] = [];
  const done = new Map<string, (e: Extract<RelayEvent, { ev: 'done' }>) => void>();
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const e = JSON.parse(line) as RelayEvent;
    events.push(e);
    if (e.ev === 'done') done.get(e.id)?.(e);
  });
  let n = 0;
  const end = Date.now() + 30_000;
  while (!events.some((e) => e.ev === 'ready')) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`relay in ${ns} did not start: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    events,
    run(c) {
      const id = `${c.id}#${++n}`;
      return new Promise((resolve, reject) => {
        const fail = (code: number | null) => reject(new Error(`relay exited (${code}): ${stderr.trim()}`));
        child.once('exit', fail);
        done.set(id, (e) => {
          child.off('exit', fail);
          done.delete(id);
          resolve(e);
        });
        child.stdin.write(`${JSON.stringify({ ...c, id })}\n`);
      });
    },
    stop: () => void child.stdin.write('{"cmd":"stop"}\n'),
    acks: (id) =>
      events.filter(
        (e): e is LeaseEvent => e.ev === 'ack' && (id === undefined || e.id.startsWith(`${id}#`)),
      ),
    close() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });

/**
 * A bridge in the root namespace carrying the server's addresses, and namespaces whose veths are its
 * ports: relays (with an address) and DHCP clients (without). Everything is named `cbdf<tag>…` and
 * removed by cleanup(), which is safe after a failure and twice.
 */
export function createRelayLab(bridgeAddresses: string[]) {
  if (process.getuid?.() !== 0) throw new Error('relay tests need root (ip netns add)');
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `cbdf-${tag}-`));
  const bridge = `cbdfbr${tag}`;
  const namespaces: string[] = [];
  const links: string[] = [];
  const children: ChildProcess[] = [];
  let n = 0;
  run('ip', ['link', 'add', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  links.push(bridge);
  for (const a of bridgeAddresses) run('ip', ['addr', 'add', a, 'dev', bridge]);
  run('ip', ['link', 'set', bridge, 'up']);

  const lab = {
    tag,
    bridge,
    /** A namespace on the bridge: eth0 with `address` (CIDR) if given, and the MAC if given. */
    addNamespace(o: { address?: string; mac?: string } = {}) {
      n++;
      const ns = `cbdf-${tag}-${n}`;
      const hostIf = `cbdf${tag}${n}`;
      const peer = `cbdfp${tag}${n}`;
      run('ip', ['netns', 'add', ns]);
      namespaces.push(ns);
      run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer]);
      links.push(hostIf);
      run('ip', ['link', 'set', peer, 'netns', ns]);
      run('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      if (o.mac) run('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', o.mac]);
      if (o.address) run('ip', ['-n', ns, 'addr', 'add', o.address, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['link', 'set', hostIf, 'master', bridge]);
      run('ip', ['link', 'set', hostIf, 'up']);
      const mac = run('ip', ['-n', ns, '-br', 'link', 'show', 'eth0']).split(/\s+/)[2]!;
      return { ns, mac };
    },
    /**
     * busybox udhcpc -q in `ns` (the server runs in the test process: never block on a client).
     * Resolves with what its script saw on `bound`; the address is not configured.
     */
    async udhcpc(ns: string, name: string): Promise<Record<string, string>> {
      const script = join(dir, `${name}.sh`);
      const events = join(dir, `${name}.events`);
      writeFileSync(
        script,
        `#!/bin/sh\nprintf '{"event":"%s","ip":"%s","serverid":"%s","subnet":"%s","hostname":"%s","lease":"%s"}\\n' "$1" "$ip" "$serverid" "$subnet" "$hostname" "$lease" >> ${events}\n`,
      );
      chmodSync(script, 0o755);
      const args = ['netns', 'exec', ns, 'busybox', 'udhcpc', '-f', '-q', '-n', '-i', 'eth0'];
      const child = spawn('ip', [...args, '-s', script, '-t', '5', '-T', '1', '-A', '1'], {
        stdio: 'ignore',
      });
      children.push(child);
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      const seen = existsSync(events)
        ? readFileSync(events, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, string>)
        : [];
      const bound = seen.filter((e) => e.event === 'bound').at(-1);
      if (code !== 0 || !bound) throw new Error(`udhcpc in ${ns} got no lease (exit ${code})`);
      return bound;
    },
    cleanup() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      for (const ns of namespaces.splice(0)) {
        try {
          for (const pid of run('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean))
            process.kill(Number(pid), 'SIGKILL');
        } catch {
          // nothing left in it
        }
        try {
          run('ip', ['netns', 'del', ns]);
        } catch {
          // already gone
        }
      }
      for (const l of links.splice(0).reverse()) {
        try {
          run('ip', ['link', 'del', l]);
        } catch {
          // went with its namespace
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return lab;
}
export type RelayLab = ReturnType<typeof createRelayLab>;

/** The counters of GET /dhcp/stats that move per packet. */
export interface DhcpCounters {
  received: number;
  replied: Record<string, number>;
  dropped: Record<string, number>;
}
/** How much each counter moved from `a` to `b` (only the ones that did). */
export function counterDelta(a: DhcpCounters, b: DhcpCounters) {
  const diff = (x: Record<string, number>, y: Record<string, number>) =>
    Object.fromEntries(
      Object.keys(y)
        .map((k) => [k, (y[k] ?? 0) - (x[k] ?? 0)] as const)
        .filter(([, v]) => v !== 0),
    );
  return {
    received: b.received - a.received,
    replied: diff(a.replied, b.replied),
    dropped: diff(a.dropped, b.dropped),
  };
}
export const sum = (r: Record<string, number>) => Object.values(r).reduce((s, v) => s + v, 0);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [giaddr, server] = process.argv.slice(2);
  if (!giaddr || !server) throw new Error('usage: dhcp-relay.ts <giaddr> <server>');
  await agent(giaddr, server);
}
