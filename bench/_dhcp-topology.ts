/**
 * What `bench/dhcp.ts` drives DHCP servers with: the network, perfdhcp as a relay agent on it, and the
 * search for a server's knee.
 *
 *   root ns   cbdb0 198.18.102.1/24 (ours listens here) ── cbdb0p 198.18.102.2/24 ─ ns cbdb-relay0
 *   ns cbdb-kea  cbdbk 198.18.103.1/24 (Kea)          ── cbdbkp 198.18.103.2/24 ─ ns cbdb-relay1
 *
 * Each relay namespace also holds 198.19.200.1/32 on its link: perfdhcp binds it, so it is the giaddr
 * of every request and the servers answer it through a /32 route back over the link. The relayed
 * clients' subnet is 198.19.200.0/21. Every name starts with `cbdb`: createTopology() first removes what a
 * killed run left, and removeOurs() is safe after a failure or twice.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promisify } from 'node:util';

export const giaddr = '198.18.192.1';
/** The relayed subnet and the pool both servers hand out of (16,369 addresses). */
export const relaySubnet = {
  cidr: '198.18.192.0/18',
  prefix: 18,
  first: '198.18.192.10',
  last: '198.18.255.250',
};
export const poolSize = 64 * 256 - 10 - 5;

export interface Path {
  /** Where perfdhcp runs. */
  relayNs: string;
  /** The server's namespace (null: the root namespace), interface and address. */
  serverNs: string | null;
  serverIf: string;
  server: string;
}

export const oursPath: Path = {
  relayNs: 'cbdb-relay0',
  serverNs: null,
  serverIf: 'cbdb0',
  server: '198.18.102.1',
};
export const keaPath: Path = {
  relayNs: 'cbdb-relay1',
  serverNs: 'cbdb-kea',
  serverIf: 'cbdbk',
  server: '198.18.103.1',
};

const prefix = 'cbdb';
const ip = (args: string[]) =>
  execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
const quiet = (f: () => unknown) => {
  try {
    f();
  } catch {
    // already gone
  }
};

/** Ends what runs in our namespaces (by PID) and deletes every namespace and link named cbdb*. */
export function removeOurs(): void {
  let listed = '';
  quiet(() => {
    listed = ip(['netns', 'list']);
  });
  const namespaces = listed
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  for (const ns of namespaces) {
    let pids: number[] = [];
    quiet(() => {
      pids = ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
    });
    for (const pid of pids) quiet(() => process.kill(pid, 'SIGKILL'));
    quiet(() => ip(['netns', 'del', ns]));
  }
  let links: string[] = [];
  quiet(() => {
    links = [...ip(['-o', 'link', 'show']).matchAll(/^\d+: (cbdb[^:@\s]*)/gm)].map((m) => m[1]!);
  });
  for (const l of links) quiet(() => ip(['link', 'del', l]));
}

/** Builds both paths. Fails if an interface outside ours already uses one of our subnets. */
export function createTopology(): void {
  if (process.getuid?.() !== 0) throw new Error('the dhcp bench needs root (network namespaces, port 67)');
  removeOurs();
  const used = ip(['-4', '-o', 'addr', 'show'])
    .split('\n')
    .filter((l) => /inet 198\.18\.10[23]\.|inet 198\.19\.20[0-7]\./.test(l));
  if (used.length > 0)
    throw new Error(`198.18.102-103.0/24 or ${relaySubnet.cidr} is already in use here: ${used.join('; ')}`);
  for (const p of [oursPath, keaPath]) {
    const [a, b] = [p.server, p.server.replace(/\.1$/, '.2')];
    const peer = `${p.serverIf}p`;
    ip(['netns', 'add', p.relayNs]);
    if (p.serverNs) ip(['netns', 'add', p.serverNs]);
    const inServer = (args: string[]) => ip(p.serverNs ? ['-n', p.serverNs, ...args] : args);
    const inRelay = (args: string[]) => ip(['-n', p.relayNs, ...args]);
    ip(['link', 'add', p.serverIf, 'type', 'veth', 'peer', 'name', peer]);
    if (p.serverNs) ip(['link', 'set', p.serverIf, 'netns', p.serverNs]);
    ip(['link', 'set', peer, 'netns', p.relayNs]);
    inServer(['addr', 'add', `${a}/24`, 'dev', p.serverIf]);
    inServer(['link', 'set', p.serverIf, 'up']);
    inServer(['route', 'add', `${giaddr}/32`, 'via', b, 'dev', p.serverIf]);
    if (p.serverNs) inServer(['link', 'set', 'lo', 'up']);
    inRelay(['addr', 'add', `${b}/24`, 'dev', peer]);
    // perfdhcp only relays from an address on a real interface, not on lo.
    inRelay(['addr', 'add', `${giaddr}/32`, 'dev', peer]);
    inRelay(['link', 'set', peer, 'up']);
    inRelay(['link', 'set', 'lo', 'up']);
  }
}

/** A long-running program started in a namespace. */
export interface NsProcess {
  alive(): boolean;
  /** The last 2,000 characters it wrote (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** Starts a program in a namespace (`ip netns exec` execs it, so the PID is the program's own). */
export function spawnIn(ns: string, argv: string[], env: Record<string, string>): NsProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (c: Buffer) => {
    tail = (tail + c.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const alive = () => child.exitCode === null && child.signalCode === null;
  child.once('exit', (code, signal) => keep(Buffer.from(`\n[exited: ${signal ?? code}]`)));
  return {
    alive,
    output: () => tail,
    async stop() {
      if (!alive()) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** One perfdhcp run's DORA figures. */
export interface Perf {
  rate: number;
  discovers: number;
  offers: number;
  acks: number;
  /** Share of DISCOVERs that did not end in an ACK, in %. */
  dropPct: number;
  /** ACKs per second of sending time. */
  leasesPerSec: number;
  /** Addresses perfdhcp saw ACKed to two clients (its -u check). */
  nonUnique: number;
}

const run = promisify(execFile);
/** Time perfdhcp waits after the last DISCOVER for answers still on their way, in µs. */
const exitWaitUs = 200_000;
/**
 * perfdhcp draws each client's MAC at random among this many (added to the last four octets); 1,900 draws
 * from 2^32 repeat a MAC once in ~2,400 steps, and a repeat would be no new lease and a false non-unique.
 */
const clientSpace = 2 ** 32 - 1;

async function perfdhcp(p: Path, args: string[], timeoutMs: number): Promise<string> {
  const argv = ['netns', 'exec', p.relayNs, 'perfdhcp', '-4', '-l', giaddr, ...args, p.server];
  try {
    return (await run('ip', argv, { timeout: timeoutMs, encoding: 'utf8' })).stdout;
  } catch (err) {
    // Exit status 3: it ran, and some exchanges did not complete.
    const e = err as { code?: number; stdout?: string };
    if (e.code === 3 && e.stdout) return e.stdout;
    throw err;
  }
}

/**
 * `count` DORA exchanges at `rate`/s from new clients (every exchange a new lease), relayed to the path's
 * server. The pool must be bigger than `count`.
 */
export async function load(p: Path, rate: number, count: number, seed: number): Promise<Perf> {
  const out = await perfdhcp(
    p,
    ['-r', String(rate), '-n', String(count), '-R', String(clientSpace), '-W', String(exitWaitUs)].concat([
      '-u',
      '-s',
      String(seed),
    ]),
    Math.ceil((count / rate) * 1000) + 15_000,
  );
  const section = (name: string) => out.split(`***Statistics for: ${name}***`)[1]?.split('***')[0] ?? '';
  const num = (text: string, label: string) =>
    Number(new RegExp(`${label}:\\s+([\\d.]+)`).exec(text)?.[1] ?? 0);
  const doff = section('DISCOVER-OFFER');
  const rack = section('REQUEST-ACK');
  const discovers = num(doff, 'sent packets');
  const acks = num(rack, 'received packets');
  // perfdhcp's rate is completed exchanges over the whole run, exit wait included: take the wait out.
  const completedRate = Number(/Rate: ([\d.]+) 4-way/.exec(out)?.[1] ?? 0);
  const sendSeconds = Math.max(
    count / rate / 2,
    completedRate > 0 ? acks / completedRate - exitWaitUs / 1e6 : 0,
  );
  return {
    rate,
    discovers,
    offers: num(doff, 'received packets'),
    acks,
    dropPct: discovers > 0 ? Math.max(0, (100 * (discovers - acks)) / discovers) : 100,
    leasesPerSec: acks / sendSeconds,
    nonUnique: num(rack, 'non unique addresses'),
  };
}

/**
 * Waits until the path's server completes a DORA, up to `timeoutMs`; null when it did, else what the last
 * probe saw. A probe is five exchanges from MACs of its own: perfdhcp may exit before the last ACK it
 * waits for (with -W), so one is not enough.
 */
export async function waitAnswering(
  p: Path,
  timeoutMs: number,
  alive: () => boolean,
): Promise<string | null> {
  const end = Date.now() + timeoutMs;
  let seen = 'no probe ran';
  while (Date.now() < end && alive()) {
    const out = await perfdhcp(
      p,
      ['-r', '100', '-n', '5', '-W', '300000', '-b', 'mac=00:0c:02:00:00:00', '-R', '16'],
      10_000,
    );
    const [offers, acks] = [...out.matchAll(/received packets: (\d+)/g)].map((m) => Number(m[1]));
    if ((acks ?? 0) > 0) return null;
    seen = `last probe: ${offers ?? 0} OFFERs, ${acks ?? 0} ACKs for 5 DISCOVERs`;
    await new Promise((r) => setTimeout(r, 200));
  }
  return seen;
}

// ---- the knee search ----

export interface SearchOptions {
  /** First offered rate (doubled until a step fails) and the highest one tried. */
  start: number;
  max: number;
  /** Length of a step at rates where the pool allows it. */
  seconds: number;
  limitMs: number;
  /** A step passes with at most this share of DISCOVERs not ending in an ACK. */
  maxDropPct: number;
  /** Most exchanges in one step: fewer than the pool holds. */
  perStep: number;
  say: (line: string) => void;
}

/** One DHCP server under test; start() gives it an empty lease store. */
export interface Side {
  label: string;
  path: Path;
  readyMs: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  alive(): boolean;
  /** Ends what the side set up for all its steps. */
  close?(): Promise<void>;
  /** What the server said when it did not answer. */
  diagnose(): string;
  /** Addresses its store holds for more than one MAC (null: not counted there). */
  nonUnique(): Promise<number | null>;
}

export interface Knee {
  /** The step at the highest rate that passed, null if none did. */
  best: Perf | null;
  answered: boolean;
  nonUnique: number;
}

async function step(
  side: Side,
  rate: number,
  o: SearchOptions,
): Promise<{ perf: Perf | null; nonUnique: number }> {
  await side.start();
  try {
    const missing = await waitAnswering(side.path, side.readyMs, side.alive);
    if (missing) {
      o.say(
        `${side.label}: no DORA within ${side.readyMs / 1000} s of its start (${missing}). ${side.diagnose()}`,
      );
      return { perf: null, nonUnique: 0 };
    }
    const count = Math.min(o.perStep, Math.max(100, Math.round(rate * o.seconds)));
    const perf = await load(side.path, rate, count, randomInt(1, 2 ** 31));
    // perfdhcp's -u sees an address ACKed to two clients; the store may still hold both.
    return { perf, nonUnique: perf.nonUnique + ((await side.nonUnique()) ?? 0) };
  } finally {
    await side.stop();
  }
}

/** Ramps, then bisects, the offered rate; at most ~24 steps (retries included) and `limitMs`. */
export async function findKnee(side: Side, o: SearchOptions): Promise<Knee> {
  const say = o.say;
  const deadline = Date.now() + o.limitMs;
  const knee: Knee = { best: null, answered: true, nonUnique: 0 };
  let failed: number | null = null;
  const passes = async (rate: number) => {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const { perf, nonUnique } = await step(side, rate, o);
      knee.nonUnique += nonUnique;
      if (!perf) {
        knee.answered = false;
        return false;
      }
      const ok = perf.dropPct <= o.maxDropPct;
      say(
        `${side.label.padEnd(11)} ${String(rate).padStart(6)}/s: sent ${perf.discovers}, offers ${perf.offers}, ` +
          `acks ${perf.acks}, drops ${perf.dropPct.toFixed(2)} % → ${perf.leasesPerSec.toFixed(0)} leases/s` +
          `${nonUnique ? `, NON-UNIQUE ${nonUnique}` : ''}${ok ? '' : attempt === 1 ? ' (again)' : ' ✗'}`,
      );
      if (ok) {
        if (!knee.best || rate > knee.best.rate) knee.best = perf;
        return true;
      }
    }
    return false;
  };
  for (let rate = o.start; rate <= o.max && knee.answered && Date.now() < deadline; rate *= 2) {
    if (!(await passes(rate))) {
      failed = rate;
      break;
    }
  }
  // Nothing passed: look below the start, three halvings at most.
  for (
    let rate = o.start / 2;
    !knee.best && knee.answered && rate >= o.start / 8 && Date.now() < deadline;
    rate /= 2
  ) {
    if (!(await passes(Math.round(rate)))) failed = Math.round(rate);
  }
  for (let i = 0; i < 4 && knee.answered && knee.best && failed && failed / knee.best.rate > 1.06; i++) {
    if (Date.now() > deadline) {
      say(`${side.label}: time limit reached, knee from the steps so far`);
      break;
    }
    const mid = Math.round(Math.sqrt(knee.best.rate * failed) / 50) * 50;
    if (!(await passes(mid))) failed = mid;
  }
  return knee;
}

/** The higher of two knees; duplicates of both count. */
export function better(a: Knee | null, b: Knee): Knee {
  if (!a) return b;
  const pick = (a.best?.leasesPerSec ?? 0) >= (b.best?.leasesPerSec ?? 0) ? a : b;
  return { best: pick.best, answered: a.answered || b.answered, nonUnique: a.nonUnique + b.nonUnique };
}
