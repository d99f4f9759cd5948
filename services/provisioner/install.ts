import type { Bus } from '../../shared/bus/bus.js';
import {
  type InventoryOp,
  type InventoryOpRequest,
  type InventoryOpResult,
  inventoryOpRpcs,
  inventoryRpcs,
  type JsonObject,
  type NoderoleSummary,
  type NodeSummary,
} from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { ValidationError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { connectSsh } from '../../shared/ssh/index.js';
import { sshTargetOf } from '../../shared/ssh/target.js';
import { BootConvergence } from './convergence.js';
import type { Bootenv } from './domain/bootenv.js';
import { type InstallRequest, InstallStore } from './install-store.js';
import type { NodeRegistry } from './registry.js';

export type { InstallRequest } from './install-store.js';

/** The role this module drives (reference §6.5). */
export const osInstallRole = 'provisioner-os-install';

type NodeDetail = InventoryOpResult<'node.get'>;

interface InstallerDeps {
  bus: Bus;
  database: Database;
  log: Logger;
  registry: NodeRegistry;
  bootenvs: () => Map<string, Bootenv>;
  sshKey: () => string | null;
  convergeTimeoutMs: number;
  defaultOs: string;
}

/** The first disk in a node's discovery facts (`facts.disks[]`) that is not removable, if it named one. */
function firstFixedDisk(discovery: JsonObject): string | undefined {
  const facts = discovery.facts;
  const disks = facts && typeof facts === 'object' && !Array.isArray(facts) ? facts.disks : undefined;
  if (!Array.isArray(disks)) return undefined;
  for (const d of disks)
    if (d && typeof d === 'object' && !Array.isArray(d) && typeof d.name === 'string' && d.removable !== true)
      return d.name;
  return undefined;
}

/** An operator's `operating-system-disk` as a kernel disk name (`/dev/` dropped), or a ValidationError. */
function diskName(chosen: string): string {
  const d = chosen.trim().replace(/^\/dev\//, '');
  if (!/^[a-z][a-z0-9]{1,31}$/.test(d))
    throw new ValidationError(
      `operating-system-disk ${JSON.stringify(chosen)} is not a disk name like vda or sda`,
      {
        field: 'operating-system-disk',
      },
    );
  return d;
}

/**
 * Reboots the node over SSH, its pinned host key checked; answers the address it reached. The reboot
 * runs in its own session (dropbear ends the session's process group when the channel closes, nohup or
 * not), so the SSH session closes cleanly before the machine goes down.
 */
async function rebootOverSsh(bus: Bus, node: NodeDetail, privateKey: string | null): Promise<string> {
  if (!privateKey)
    throw new Error('CROWBAR_SSH_KEY is not set: the provisioner cannot reboot the node over SSH');
  if (!node.sshHostKey)
    throw new Error(`node ${node.name} has no pinned SSH host key: it cannot be rebooted safely`);
  const target = await sshTargetOf(bus, node);
  const session = await connectSsh({
    host: target.host,
    port: target.port,
    username: 'root',
    privateKey,
    hostKey: node.sshHostKey,
    timeoutMs: 15_000,
  });
  try {
    const r = await session.exec('setsid sh -c "sleep 1; reboot" </dev/null >/dev/null 2>&1 &', {
      timeoutMs: 15_000,
    });
    if (r.code !== 0) throw new Error(`reboot on ${node.name} exited ${r.code}: ${r.stderr}`);
  } finally {
    await session.end();
  }
  return `${target.host}:${target.port}`;
}

/**
 * The OS install without the original's races (reference §6.5–6.6; DESIGN §4):
 * - when a `provisioner-os-install` noderole goes TODO (its `noderole.todo` event), `request` picks the
 *   disk (attrib `operating-system-disk`, else the first non-removable disk in the node's facts) and the
 *   OS (attrib `provisioner-target_os`), records them, and sets the node's bootenv `<os>-install`;
 * - the role's run (a service jig of the provisioner) does the same if the event has not been handled
 *   yet, then waits until both boot databases serve the new bootenv (`BootConvergence`) and only then
 *   reboots the node over SSH (its pinned host key checked) and marks it not alive, so nothing runs on
 *   it until the installed system reports in. After a bounded wait the run fails, naming what it waited
 *   for.
 * The installer itself sets bootenv `local` and waits until the provisioner serves it before it reboots.
 */
export class Installer {
  readonly #store: InstallStore;
  readonly #convergence: BootConvergence;

  constructor(private readonly deps: InstallerDeps) {
    this.#store = new InstallStore(deps.database);
    this.#convergence = new BootConvergence(deps.bus, deps.registry, deps.convergeTimeoutMs);
  }

  load(): Promise<void> {
    return this.#store.load();
  }

  /** Install runs waiting for the boot databases, by node. */
  waiting() {
    return this.#convergence.waiting();
  }

  /** The install the node's boot script renders (disk), if one was requested. */
  of(nodeId: number): InstallRequest | undefined {
    return this.#store.get(nodeId);
  }

  /**
   * The provisioner saw a node change: wakes runs waiting for convergence, and forgets an install the
   * node has left (an operator sent it back to discovery, say), so a new request installs again.
   */
  async nodeSeen(node: NodeSummary): Promise<void> {
    this.#convergence.wake();
    const known = this.#store.get(node.id);
    if (known && node.bootenv !== known.bootenv && node.bootenv !== 'local')
      await this.#store.forget(node.id);
  }

  /** `noderole.todo` of provisioner-os-install. */
  async onTodo(nr: NoderoleSummary, correlationId: string): Promise<void> {
    if (nr.role !== osInstallRole) return;
    const r = await this.#request(nr.nodeId, nr, correlationId);
    if ('skip' in r)
      this.deps.log.info({ node: nr.nodeId, noderole: nr.id }, `os install not requested: ${r.skip}`);
  }

  /** The role's run: request (idempotent), wait for convergence, reboot into the installer. */
  async run(
    req: { nodeId: number; noderoleId: number; node: string; runId: number },
    correlationId?: string,
  ) {
    const lines: string[] = [];
    const say = (l: string) => {
      lines.push(l);
      this.deps.log.info({ node: req.nodeId, runId: req.runId }, `os install: ${l}`);
    };
    const r = await this.#request(req.nodeId, { id: req.noderoleId }, correlationId);
    if ('skip' in r) {
      say(`nothing to do: ${r.skip}`);
      return { wall: {}, log: `${lines.join('\n')}\n` };
    }
    say(`bootenv ${r.bootenv}, disk ${r.disk}; waiting for dhcp-db and the provisioner to serve it`);
    const waited = await this.#convergence.until(req.nodeId, r.bootenv);
    say(`both boot databases serve ${r.bootenv} (after ${waited} ms); rebooting the node`);
    const node = await this.#api('node.get', { node: req.nodeId }, correlationId);
    const via = await rebootOverSsh(this.deps.bus, node, this.deps.sshKey());
    await this.#store.markRebooted(req.nodeId, new Date().toISOString());
    await this.deps.bus.request(inventoryRpcs.setAlive, {
      node: req.nodeId,
      alive: false,
      reason: `rebooting into ${r.bootenv}`,
    });
    say(`reboot sent over SSH to ${via}; the node is not alive until the installed system reports in`);
    return {
      wall: { crowbar_wall: { install: { bootenv: r.bootenv, disk: r.disk, convergedMs: waited } } },
      log: `${lines.join('\n')}\n`,
    };
  }

  #api<K extends InventoryOp>(op: K, args: InventoryOpRequest<K>, correlationId?: string) {
    return this.deps.bus.request(inventoryOpRpcs[op], args, {
      timeoutMs: 30_000,
      ...(correlationId ? { correlationId } : {}),
    });
  }

  /** The install noderole's attrib (its data, else the role's default). */
  async #attrib(noderoleId: number, name: string) {
    return (await this.#api('attrib.get', { target: 'noderole', id: noderoleId, attrib: name })).value;
  }

  /** The disk an install writes: the operator's choice, else the first fixed disk the node reported. */
  async #chooseDisk(node: NodeDetail, noderoleId: number): Promise<string> {
    const chosen = await this.#attrib(noderoleId, 'operating-system-disk');
    if (typeof chosen === 'string' && chosen.trim()) return diskName(chosen);
    const first = firstFixedDisk(node.discovery);
    if (!first)
      throw new ValidationError(
        `node ${node.name} reported no fixed disk in its facts: set its operating-system-disk attrib`,
        { field: 'operating-system-disk' },
      );
    return first;
  }

  /** Why no install is requested now, if none should be (see `#request`). */
  #skipReason(node: NodeDetail, known: InstallRequest | undefined): string | undefined {
    if (known?.rebootedAt && node.bootenv === 'local')
      return `the node runs the system installed by ${known.bootenv} (rebooted into it at ${known.rebootedAt})`;
    if (known?.rebootedAt && node.bootenv === known.bootenv)
      return `the node is installing (rebooted into ${known.bootenv} at ${known.rebootedAt}); not rebooting it again`;
    if (node.bootenv === 'local' && !known) return 'the node already boots its installed system';
    return undefined;
  }

  /**
   * Reference §6.5 step 1: chooses disk and OS and sets bootenv `<os>-install`. Skipped (with the
   * reason) when the role already ran on the node (destructive), the node already boots its installed
   * system, or the node was rebooted into this install and has not finished it — the provisioner's own
   * guard, as the original's hooks had theirs: a node never installs twice for one request.
   */
  async #request(
    nodeId: number,
    noderole: { id: number; runCount?: number },
    correlationId?: string,
  ): Promise<InstallRequest | { skip: string }> {
    if (noderole.runCount !== undefined && noderole.runCount > 0)
      return { skip: `the install already ran on this node (run count ${noderole.runCount})` };
    const node = await this.#api('node.get', { node: nodeId }, correlationId);
    const known = this.#store.get(nodeId);
    const skip = this.#skipReason(node, known);
    if (skip) return { skip };
    const os = (await this.#attrib(noderole.id, 'provisioner-target_os')) || this.deps.defaultOs;
    const bootenv = `${String(os)}-install`;
    if (!this.deps.bootenvs().has(bootenv))
      throw new ValidationError(`no bootenv ${bootenv} for provisioner-target_os ${String(os)}`, {
        field: 'provisioner-target_os',
      });
    const r: InstallRequest = {
      nodeId,
      bootenv,
      disk: await this.#chooseDisk(node, noderole.id),
      rebootedAt: null,
    };
    if (known?.bootenv !== r.bootenv || known.disk !== r.disk) await this.#store.remember(r);
    if (node.bootenv !== bootenv) {
      await this.#api('node.update', { node: nodeId, bootenv }, correlationId);
      this.deps.log.info(
        { node: nodeId, from: node.bootenv, bootenv, disk: r.disk },
        'os install requested: bootenv set',
      );
    }
    return this.#store.get(nodeId) ?? r;
  }
}

export function createInstaller(deps: InstallerDeps): Installer {
  return new Installer(deps);
}
