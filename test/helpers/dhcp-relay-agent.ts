import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import {
  buildRequest,
  DECLINE,
  DISCOVER,
  fuzzPacket,
  macOf,
  parseReply,
  REQUEST,
  type Reply,
  randomMac,
} from './dhcp-wire.js';
import { prng } from './prng.js';

/**
 * The relay agent's own side (test/helpers/dhcp-relay.ts starts it): run as
 * `node --import tsx dhcp-relay-agent.ts <giaddr> <server>` in a network namespace, it takes commands
 * as JSON lines on stdin and reports events as JSON lines on stdout.
 */

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

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [giaddr, server] = process.argv.slice(2);
  if (!giaddr || !server) throw new Error('usage: dhcp-relay.ts <giaddr> <server>');
  await agent(giaddr, server);
}
