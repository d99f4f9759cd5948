import { existsSync, readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import type { Bus } from '../../shared/bus/bus.js';
import { health, ipamRpcs, type ServiceName, serviceName } from '../../shared/catalogue/index.js';
import type { Logger } from '../../shared/log.js';
import { bind } from './engine/binding.js';
import { bindAdminRoles, commitNode, createNode } from './engine/nodes.js';
import { commit } from './engine/transitions.js';
import type { GraphTx } from './engine/tx.js';
import {
  adminNodeServiceState,
  firstAdminNode,
  lockFirstAdminHint,
  mergeNodeHint,
  setHostKeyIfUnset,
} from './store/nodes.js';
import { roleExists } from './store/roles.js';

type Tx = <T>(fn: (g: GraphTx) => Promise<T>) => Promise<T>;

/** This machine's non-loopback addresses inside `cidr` (e.g. `198.18.0.0/24`). */
export function hostAddressesIn(
  cidr: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): string[] {
  const [net, bits] = cidr.split('/');
  const family = isIP(net ?? '');
  if (!net || family === 0) return [];
  const list = new BlockList();
  list.addSubnet(net, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  const out: string[] = [];
  for (const infos of Object.values(interfaces))
    for (const i of infos ?? [])
      if (
        !i.internal &&
        i.family === (family === 4 ? 'IPv4' : 'IPv6') &&
        list.check(i.address, i.family === 'IPv4' ? 'ipv4' : 'ipv6')
      )
        out.push(i.address);
  return out;
}

/**
 * The admin node at first start (reference §8): created once, its admin roles bound (crowbar-joined-node,
 * crowbar-admin-node) and marked alive. It is committed by `adminNodeReconciler` once the services
 * answering its roles are up. A node created by an earlier version without its admin roles gets them now.
 */
export async function seedAdminNode(
  tx: Tx,
  name: string,
  log: Logger,
  opts: { hostChanges: boolean; hostKeyFile?: string } = { hostChanges: false },
): Promise<void> {
  // Opted in to host changes, the admin node's scripts run over SSH to this machine's loopback address:
  // its host key is pinned from this machine's own, as registration does for other nodes.
  const keyFile = opts.hostKeyFile ?? '/etc/ssh/ssh_host_ed25519_key.pub';
  const hostKey = opts.hostChanges && existsSync(keyFile) ? readFileSync(keyFile, 'utf8').trim() : null;
  await tx(async (g) => {
    let admin = await firstAdminNode(g);
    if (!admin) {
      admin = await createNode(g, {
        name,
        admin: true,
        bootenv: 'local',
        description: 'The Crowbar admin node',
      });
      log.info({ node: admin.id, name }, 'admin node created');
    }
    if (hostKey) await setHostKeyIfUnset(g, admin.id, hostKey);
    await bindAdminRoles(g, admin.id);
  });
}

/**
 * The admin node's addresses on a network are this machine's own there: hints `<network>-v4addr` /
 * `<network>-v6addr` (network-ipam honours them inside the range it allocates from), set unless the
 * operator set them. Answers whether it changed the hint; `noInterface` hears of a network no interface
 * of this machine is on.
 */
export async function hintAdminAddresses(
  g: GraphTx,
  network: { name: string; subnets: string[] },
  noInterface: (network: string, subnets: string[]) => void,
  interfaces?: NodeJS.Dict<NetworkInterfaceInfo[]>,
): Promise<boolean> {
  const admin = await lockFirstAdminHint<Record<string, unknown>>(g);
  if (!admin) return false;
  const hints: Record<string, string> = {};
  let carried = false;
  for (const subnet of network.subnets) {
    const [own] = hostAddressesIn(subnet, interfaces);
    if (!own) continue;
    carried = true;
    const key = `${network.name}-${subnet.includes(':') ? 'v6' : 'v4'}addr`;
    if (admin.hint[key] === undefined) hints[key] = own;
  }
  if (!carried) noInterface(network.name, network.subnets);
  if (Object.keys(hints).length === 0) return false;
  await mergeNodeHint(g, admin.id, hints);
  await g.nodeChanged(admin.id, ['hint'], `this machine's addresses on network ${network.name}`);
  g.log.info({ node: admin.id, network: network.name, hints }, "admin node's addresses are this machine's");
  return true;
}

/** Logs once per network that no interface of this machine is on it. */
export function oncePerNetwork(log: Logger) {
  const told = new Set<string>();
  return (network: string, subnets: string[]) => {
    if (told.has(network)) return;
    told.add(network);
    log.warn(
      { network, subnets },
      'no interface of this machine carries an address on this network; the admin node gets one from its range that nothing here answers on',
    );
  };
}

/**
 * Brings the admin node to where `npm start` promises it, level-triggered (call it until it answers
 * true): (1) committed, once every service that answers one of its roles is up — committed earlier, the
 * runs of those roles would fail against a service still starting; (2) on the admin network once
 * network-ipam has defined its role, at this machine's own address there, the network role committed
 * with it.
 */
export function adminNodeReconciler(deps: {
  tx: Tx;
  bus: Bus;
  log: Logger;
  noInterface: ReturnType<typeof oncePerNetwork>;
}) {
  const { tx, bus, log } = deps;
  let committed = false;
  let joined = false;
  return async (): Promise<boolean> => {
    const admin = await tx((g) => adminNodeServiceState(g));
    if (!admin) return false;
    if (!committed) {
      const owners = (admin.owners ?? []).filter((o): o is ServiceName => serviceName.safeParse(o).success);
      const down: string[] = [];
      for (const o of owners) await bus.request(health[o], {}, { timeoutMs: 1500 }).catch(() => down.push(o));
      if (down.length > 0) log.debug({ waitingFor: down }, 'admin node waits for the services of its roles');
      else {
        if (admin.proposed > 0) {
          await tx((g) => commitNode(g, admin.id));
          log.info({ node: admin.id, owners }, 'admin node committed');
        }
        committed = true;
      }
    }
    if (!joined) joined = await join(admin.id);
    return committed && joined;
  };

  async function join(id: number): Promise<boolean> {
    if (!(await tx((g) => roleExists(g, 'network-admin')))) return false;
    const net = await bus.request(ipamRpcs.networkGet, { network: 'admin' }, { timeoutMs: 5000 });
    // A turn of its own when the hint changes, so network-ipam has seen it (node.changed) before the
    // role binds and allocates.
    if (await tx((g) => hintAdminAddresses(g, net, deps.noInterface))) return false;
    return tx(async (g) => {
      const nrId = await bind(g, 'network-admin', id, (await g.nodeSummary(id))!.deploymentId);
      const nr = await g.noderole(nrId);
      if (nr?.state === 'proposed') await commit(g, nr, 'the admin node joined the admin network');
      return true;
    });
  }
}

/**
 * Runs the admin node's reconciler every second until it is done, or for at most 10 minutes (the
 * operator can still commit and join it through the API); answers the function that stops it.
 */
export function reconcileAdminNode(deps: Parameters<typeof adminNodeReconciler>[0]): () => void {
  const until = Date.now() + 600_000;
  const reconcile = adminNodeReconciler(deps);
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    reconcile()
      .then((done) => {
        if (done || Date.now() > until) clearInterval(timer);
      })
      .catch((err: unknown) => deps.log.warn({ err }, 'admin node not reconciled yet; will retry'))
      .finally(() => {
        busy = false;
      });
  }, 1000);
  return () => clearInterval(timer);
}
