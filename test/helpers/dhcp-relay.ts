import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LeaseEvent, RelayCommand, RelayEvent } from './dhcp-relay-agent.js';

export type { LeaseEvent, RelayCommand, RelayEvent } from './dhcp-relay-agent.js';
export * from './dhcp-wire.js';

/**
 * A DHCP relay agent (RFC 1542 §4) for tests: a process in a network namespace, bound to giaddr:67,
 * that unicasts BOOTREQUESTs (giaddr set, hops 1) to the server and takes its replies on giaddr:67. It
 * drives many exchanges without raw sockets and does not block the server under test.
 *
 * Test side: `createRelayLab` (a bridge and namespaces named `cbdf…`), `startRelay` (the agent as a
 * child, commands in and events out as JSON lines).
 * Agent side: dhcp-relay-agent.ts; packets: dhcp-wire.ts.
 */

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

const agentFile = fileURLToPath(new URL('./dhcp-relay-agent.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Starts the agent in `ns`, bound to giaddr:67 and talking to `server`:67. */
export async function startRelay(ns: string, giaddr: string, server: string): Promise<Relay> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', agentFile, giaddr, server],
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
