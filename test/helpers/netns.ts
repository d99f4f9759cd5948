import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * Network namespaces for tests: each "node" is a namespace joined to the root namespace by a veth pair,
 * either point to point or through a bridge the lab owns. Addresses come only from 198.18.0.0/15 and
 * ULA fd00::/8. Names carry a random tag so concurrent test files never collide; cleanup() removes
 * everything this lab made, and is safe to call after a failure or twice.
 */
export interface NsNode {
  /** Namespace name (for `ip netns exec`). */
  ns: string;
  /** Root-side veth. */
  hostIf: string;
  /** The node's IPv4 / IPv6 address, without prefix length. */
  ipv4: string;
  ipv6: string;
  /** The root side's addresses the node reaches the control plane on. */
  gateway4: string;
  gateway6: string;
}

export interface Lab {
  tag: string;
  /** Creates one namespace with its veth pair, addresses and default routes. */
  addNode(): NsNode;
  /** Runs a command inside a namespace; returns stdout (throws with stderr on failure). */
  exec(node: NsNode, argv: string[], opts?: { timeoutMs?: number }): string;
  /** Starts a long-running process inside a namespace; killed by cleanup() if still running. */
  spawn(node: NsNode, argv: string[]): ChildProcess;
  linkDown(node: NsNode): void;
  linkUp(node: NsNode): void;
  cleanup(): void;
}

const ip = (args: string[]) =>
  execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });

/** A /24 in 198.19.0.0/16 that no interface in the root namespace uses yet. */
function freeSubnet(): number {
  const used = ip(['-4', '-o', 'addr', 'show']);
  for (let i = 0; i < 50; i++) {
    const third = 1 + ((randomBytes(1)[0] as number) % 254);
    if (!used.includes(`198.19.${third}.`)) return third;
  }
  throw new Error('no free 198.19.x.0/24 test subnet found after 50 tries');
}

export function createLab(opts: { bridge?: boolean } = {}): Lab {
  if (process.getuid?.() !== 0) throw new Error('network namespace tests need root (ip netns add)');
  const tag = randomBytes(3).toString('hex');
  const third = freeSubnet();
  const namespaces: string[] = [];
  const links: string[] = [];
  const children: ChildProcess[] = [];
  const bridge = opts.bridge ? `cbr${tag}` : null;
  const v6net = `fd00:cb:${third.toString(16)}`;
  if (bridge) {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    links.push(bridge);
    ip(['addr', 'add', `198.19.${third}.1/24`, 'dev', bridge]);
    ip(['-6', 'addr', 'add', `${v6net}::1/64`, 'dev', bridge, 'nodad']);
    ip(['link', 'set', bridge, 'up']);
  }
  let n = 0;

  const lab: Lab = {
    tag,
    addNode() {
      n++;
      if (n > 60) throw new Error('a lab holds at most 60 nodes');
      const ns = `cb-${tag}-${n}`;
      const hostIf = `v${tag}${n}`;
      const peer = `p${tag}${n}`;
      ip(['netns', 'add', ns]);
      namespaces.push(ns);
      ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer]);
      links.push(hostIf);
      ip(['link', 'set', peer, 'netns', ns]);
      const inNs = (args: string[]) => ip(['-n', ns, ...args]);
      inNs(['link', 'set', peer, 'name', 'eth0']);
      inNs(['link', 'set', 'lo', 'up']);
      // Keep IPv6 addresses across a link flap, as IPv4 does (the kernel drops them by default).
      execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.eth0.keep_addr_on_down=1']);
      let node: NsNode;
      if (bridge) {
        const host = n + 1;
        node = {
          ns,
          hostIf,
          ipv4: `198.19.${third}.${host}`,
          ipv6: `${v6net}::${host.toString(16)}`,
          gateway4: `198.19.${third}.1`,
          gateway6: `${v6net}::1`,
        };
        ip(['link', 'set', hostIf, 'master', bridge]);
        inNs(['addr', 'add', `${node.ipv4}/24`, 'dev', 'eth0']);
        inNs(['-6', 'addr', 'add', `${node.ipv6}/64`, 'dev', 'eth0', 'nodad']);
      } else {
        // Point to point: a /30 and a /64 per node.
        const base = 4 * (n - 1);
        node = {
          ns,
          hostIf,
          ipv4: `198.19.${third}.${base + 2}`,
          ipv6: `${v6net}:${n.toString(16)}::2`,
          gateway4: `198.19.${third}.${base + 1}`,
          gateway6: `${v6net}:${n.toString(16)}::1`,
        };
        ip(['addr', 'add', `${node.gateway4}/30`, 'dev', hostIf]);
        ip(['-6', 'addr', 'add', `${node.gateway6}/64`, 'dev', hostIf, 'nodad']);
        inNs(['addr', 'add', `${node.ipv4}/30`, 'dev', 'eth0']);
        inNs(['-6', 'addr', 'add', `${node.ipv6}/64`, 'dev', 'eth0', 'nodad']);
      }
      ip(['link', 'set', hostIf, 'up']);
      inNs(['link', 'set', 'eth0', 'up']);
      inNs(['route', 'add', 'default', 'via', node.gateway4]);
      inNs(['-6', 'route', 'add', 'default', 'via', node.gateway6]);
      return node;
    },
    exec(node, argv, o = {}) {
      return execFileSync('ip', ['netns', 'exec', node.ns, ...argv], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: o.timeoutMs ?? 10_000,
      });
    },
    spawn(node, argv) {
      const c = spawn('ip', ['netns', 'exec', node.ns, ...argv], { stdio: 'ignore' });
      children.push(c);
      return c;
    },
    // The node's own NIC goes down (a pulled cable): the root side keeps its route, so packets to the
    // node are silently lost rather than refused.
    linkDown(node) {
      ip(['-n', node.ns, 'link', 'set', 'eth0', 'down']);
    },
    linkUp(node) {
      ip(['-n', node.ns, 'link', 'set', 'eth0', 'up']);
      // Taking the link down flushed the default routes through it.
      ip(['-n', node.ns, 'route', 'replace', 'default', 'via', node.gateway4]);
      ip(['-n', node.ns, '-6', 'route', 'replace', 'default', 'via', node.gateway6]);
    },
    cleanup() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      for (const ns of namespaces.splice(0)) {
        // Anything still running in our namespace was started by this test; end it by PID.
        const pids = (() => {
          try {
            return ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
          } catch {
            return [];
          }
        })();
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        try {
          ip(['netns', 'del', ns]);
        } catch {
          // already gone
        }
      }
      for (const l of links.splice(0).reverse()) {
        try {
          ip(['link', 'del', l]);
        } catch {
          // removed with its namespace peer
        }
      }
    },
  };
  return lab;
}
