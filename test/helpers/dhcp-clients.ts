import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real DHCP clients (busybox udhcpc, ISC dhclient) in network namespaces the test makes: each client is
 * a namespace whose veth is enslaved to one bridge in the root namespace; the bridge carries the
 * server's address (from 198.18.0.0/15) and is where dhcp-db listens; clients start with no address.
 * Everything carries the lab's random tag and is removed by cleanup(), also after a failure.
 */
export interface DhcpLink {
  ns: string;
  /** Root-side end of the client's veth (a port of the bridge). */
  hostIf: string;
  /** Interface inside the namespace. */
  clientIf: string;
  mac: string;
}

/** What a client's script saw: one entry per event (bound, renew, deconfig, nak, …) with its variables. */
export type ClientEvent = Partial<Record<string, string>> & { event: string };

const run = (cmd: string, args: string[], timeout = 15_000) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout });

export function createDhcpLab(opts: { serverAddress: string; prefix: number }) {
  if (process.getuid?.() !== 0) throw new Error('DHCP client tests need root (ip netns add)');
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `cbdh-${tag}-`));
  const namespaces: string[] = [];
  const links: string[] = [];
  const children: ChildProcess[] = [];
  let n = 0;
  const bridge = `cbdhbr${tag}`;
  run('ip', ['link', 'add', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  links.push(bridge);
  run('ip', ['addr', 'add', `${opts.serverAddress}/${opts.prefix}`, 'dev', bridge]);
  run('ip', ['link', 'set', bridge, 'up']);

  // A script per client name: it appends its event and environment as one JSON line. The record file is
  // written into the script because dhclient runs its script with a clean environment.
  const scriptFor = (name: string) => {
    const path = join(dir, `${name}.sh`);
    const out = JSON.stringify(join(dir, `${name}.events`));
    writeFileSync(
      path,
      `#!/bin/sh\nexec ${process.execPath} -e 'const e={...process.env,event:process.argv[1]||process.env.reason||""};require("fs").appendFileSync(${out},JSON.stringify(e)+"\\n")' "$1"\n`,
    );
    chmodSync(path, 0o755);
    return path;
  };

  const lab = {
    tag,
    dir,
    /** The bridge in the root namespace that carries the server address: dhcp-db serves on it. */
    bridge,
    /** A namespace with one veth on the bridge. */
    addLink(mac?: string): DhcpLink {
      n++;
      const ns = `cbdh-${tag}-${n}`;
      const hostIf = `cbdh${tag}${n}`;
      const clientIf = `eth${n}`;
      const address =
        mac ??
        `02:${tag.slice(0, 2)}:${tag.slice(2, 4)}:${tag.slice(4, 6)}:00:${n.toString(16).padStart(2, '0')}`;
      run('ip', ['netns', 'add', ns]);
      namespaces.push(ns);
      run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', `p${tag}${n}`]);
      links.push(hostIf);
      run('ip', ['link', 'set', `p${tag}${n}`, 'netns', ns]);
      run('ip', ['-n', ns, 'link', 'set', `p${tag}${n}`, 'name', clientIf]);
      run('ip', ['-n', ns, 'link', 'set', clientIf, 'address', address]);
      run('ip', ['-n', ns, 'link', 'set', clientIf, 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['link', 'set', hostIf, 'master', bridge]);
      run('ip', ['link', 'set', hostIf, 'up']);
      return { ns, hostIf, clientIf, mac: address };
    },

    /** Events recorded so far by the clients of `name`. */
    events(name: string): ClientEvent[] {
      const f = join(dir, `${name}.events`);
      if (!existsSync(f)) return [];
      return readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ClientEvent);
    },

    /**
     * busybox udhcpc. `once`: get a lease and exit (-q); else it keeps running (renew with SIGUSR1).
     * `extra` are udhcpc options such as ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000'].
     */
    udhcpc(link: DhcpLink, name: string, o: { once: boolean; extra?: string[] }): ChildProcess {
      const args = [
        'netns',
        'exec',
        link.ns,
        'busybox',
        'udhcpc',
        '-f',
        '-i',
        link.clientIf,
        '-s',
        scriptFor(name),
      ];
      args.push('-t', '4', '-T', '1', '-A', '1', ...(o.once ? ['-q', '-n'] : []), ...(o.extra ?? []));
      const child = spawn('ip', args, { stdio: 'ignore' });
      children.push(child);
      return child;
    },

    /** ISC dhclient: one exchange (-1), keeping its lease file between calls so it INIT-REBOOTs. */
    dhclient(link: DhcpLink, name: string, extraConf = '') {
      const conf = join(dir, `${name}.conf`);
      writeFileSync(conf, `timeout 20;\nretry 1;\ninitial-interval 1;\n${extraConf}\n`);
      const args = [
        'netns',
        'exec',
        link.ns,
        'dhclient',
        '-1',
        '-d',
        '-cf',
        conf,
        '-lf',
        join(dir, `${name}.leases`),
        '-pf',
        join(dir, `${name}.pid`),
        '-sf',
        scriptFor(name),
        link.clientIf,
      ];
      // -d keeps it in the foreground; it stays to renew, so it is stopped once it has bound.
      const child = spawn('ip', args, { stdio: 'ignore' });
      children.push(child);
      return child;
    },

    /** udhcpc -q: one lease, then exit (the server runs in this process: never block on a client). */
    async udhcpcOnce(link: DhcpLink, name: string, extra: string[] = []) {
      const child = lab.udhcpc(link, name, { once: true, extra });
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      if (code !== 0) throw new Error(`udhcpc on ${link.clientIf} got no lease (exit ${code})`);
    },

    /** Flushes the client's address, so the next client run starts clean on the link. */
    flush(link: DhcpLink) {
      run('ip', ['-n', link.ns, 'addr', 'flush', 'dev', link.clientIf]);
    },

    cleanup() {
      for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
      for (const ns of namespaces) {
        try {
          // Processes left in the namespace (a dhclient that forked) go with it.
          const pids = run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean);
          for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
        try {
          run('ip', ['netns', 'del', ns]);
        } catch {
          // already gone
        }
      }
      for (const l of links) {
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
export type DhcpLab = ReturnType<typeof createDhcpLab>;

export { until } from './inventory.js';
