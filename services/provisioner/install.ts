import type { Bus } from '../../shared/bus/bus.js';
import {
  dhcpMessages,
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
import { queryText } from '../../shared/db/prepared.js';
import { ValidationError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { connectSsh } from '../../shared/ssh/index.js';
import { sshTargetOf } from '../../shared/ssh/target.js';
import type { Bootenv } from './domain/bootenv.js';
import type { NodeRegistry } from './registry.js';

/** The role this module drives (reference §6.5). */
export const osInstallRole = 'provisioner-os-install';

export interface InstallRequest {
  nodeId: number;
  bootenv: string;
  disk: string;
  /** When the run rebooted the node into the installer (null until then). */
  rebootedAt: string | null;
}

type NodeDetail = InventoryOpResult<'node.get'>;

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

/**
 * The OS install without the original's races (reference §6.5–6.6; DESIGN §4):
 * - when a `provisioner-os-install` noderole goes TODO (its `noderole.todo` event), `request` picks the
 *   disk (attrib `operating-system-disk`, else the first non-removable disk in the node's facts) and the
 *   OS (attrib `provisioner-target_os`), records them, and sets the node's bootenv `<os>-install`;
 * - the role's run (a service jig of the provisioner) does the same if the event has not been handled
 *   yet, then waits until both boot databases serve the new bootenv — the provisioner's own projection
 *   (woken by its node events) and dhcp-db's reservation (asked again on a backoff, as dhcp-db announces
 *   no reservation changes) — and only then reboots the node over SSH (its pinned host key checked)
 *   and marks it not alive, so nothing runs on it until the installed system reports in. After a
 *   bounded wait the run fails, naming what it waited for.
 * The installer itself sets bootenv `local` and waits until the provisioner serves it before it reboots.
 */
export function createInstaller(deps: {
  bus: Bus;
  database: Database;
  log: Logger;
  registry: NodeRegistry;
  bootenvs: () => Map<string, Bootenv>;
  sshKey: () => string | null;
  convergeTimeoutMs: number;
  defaultOs: string;
}) {
  const { bus, log, registry } = deps;
  const installs = new Map<number, InstallRequest>();
  /** Runs waiting for the boot databases: what each still waits for (health detail, and tests). */
  const waiting = new Map<number, { bootenv: string; missing: string[]; since: string }>();
  let waiters: (() => void)[] = [];

  const api = <K extends InventoryOp>(op: K, args: InventoryOpRequest<K>, correlationId?: string) =>
    bus.request(inventoryOpRpcs[op], args, {
      timeoutMs: 30_000,
      ...(correlationId ? { correlationId } : {}),
    });
  /** The install noderole's attrib (its data, else the role's default). */
  const attrib = async (noderoleId: number, name: string) =>
    (await api('attrib.get', { target: 'noderole', id: noderoleId, attrib: name })).value;

  /** The disk an install writes: the operator's choice, else the first fixed disk the node reported. */
  const chooseDisk = async (node: NodeDetail, noderoleId: number): Promise<string> => {
    const chosen = await attrib(noderoleId, 'operating-system-disk');
    if (typeof chosen === 'string' && chosen.trim()) {
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
    const first = firstFixedDisk(node.discovery);
    if (!first)
      throw new ValidationError(
        `node ${node.name} reported no fixed disk in its facts: set its operating-system-disk attrib`,
        { field: 'operating-system-disk' },
      );
    return first;
  };

  const remember = async (r: InstallRequest) => {
    await queryText(
      deps.database.db,
      `insert into provisioner.installs (node_id, bootenv, disk) values ($1, $2, $3)
       on conflict (node_id) do update set bootenv = excluded.bootenv, disk = excluded.disk,
         requested_at = now(), rebooted_at = null`,
      [r.nodeId, r.bootenv, r.disk],
    );
    installs.set(r.nodeId, r);
  };
  const forget = async (nodeId: number) => {
    installs.delete(nodeId);
    await queryText(deps.database.db, 'delete from provisioner.installs where node_id = $1', [nodeId]);
  };

  /**
   * Reference §6.5 step 1: chooses disk and OS and sets bootenv `<os>-install`. Skipped (with the
   * reason) when the role already ran on the node (destructive), the node already boots its installed
   * system, or the node was rebooted into this install and has not finished it — the provisioner's own
   * guard, as the original's hooks had theirs: a node never installs twice for one request.
   */
  async function request(
    nodeId: number,
    noderole: { id: number; runCount?: number },
    correlationId?: string,
  ): Promise<InstallRequest | { skip: string }> {
    if (noderole.runCount !== undefined && noderole.runCount > 0)
      return { skip: `the install already ran on this node (run count ${noderole.runCount})` };
    const node = await api('node.get', { node: nodeId }, correlationId);
    const known = installs.get(nodeId);
    if (known?.rebootedAt && node.bootenv === 'local')
      return {
        skip: `the node runs the system installed by ${known.bootenv} (rebooted into it at ${known.rebootedAt})`,
      };
    if (known?.rebootedAt && node.bootenv === known.bootenv)
      return {
        skip: `the node is installing (rebooted into ${known.bootenv} at ${known.rebootedAt}); not rebooting it again`,
      };
    if (node.bootenv === 'local' && !known) return { skip: 'the node already boots its installed system' };
    const os = (await attrib(noderole.id, 'provisioner-target_os')) || deps.defaultOs;
    const bootenv = `${String(os)}-install`;
    if (!deps.bootenvs().has(bootenv))
      throw new ValidationError(`no bootenv ${bootenv} for provisioner-target_os ${String(os)}`, {
        field: 'provisioner-target_os',
      });
    const r: InstallRequest = {
      nodeId,
      bootenv,
      disk: await chooseDisk(node, noderole.id),
      rebootedAt: null,
    };
    if (known?.bootenv !== r.bootenv || known.disk !== r.disk) await remember(r);
    if (node.bootenv !== bootenv) {
      await api('node.update', { node: nodeId, bootenv }, correlationId);
      log.info(
        { node: nodeId, from: node.bootenv, bootenv, disk: r.disk },
        'os install requested: bootenv set',
      );
    }
    return installs.get(nodeId) ?? r;
  }

  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  /** What is not yet serving `bootenv` for the node (empty when both are). */
  async function pending(nodeId: number, bootenv: string): Promise<string[]> {
    const missing: string[] = [];
    const mine = registry.byId(nodeId)?.bootenv ?? null;
    if (mine !== bootenv) missing.push(`the provisioner serves bootenv ${mine ?? 'none'}`);
    const dhcp = await bus
      .request(dhcpMessages.reservationList, { nodeId }, { timeoutMs: 5000 })
      .then((r) => r.reservations)
      .catch((err: Error) => err);
    if (dhcp instanceof Error) missing.push(`dhcp-db does not answer (${dhcp.message})`);
    else if (dhcp.length === 0) missing.push('dhcp-db has no reservation for the node');
    else {
      const stale = dhcp.filter((r) => r.bootenv !== bootenv);
      if (stale.length) missing.push(`dhcp-db serves bootenv ${stale[0]!.bootenv} for ${stale[0]!.mac}`);
    }
    return missing;
  }

  /** Waits until both boot databases serve `bootenv`; throws naming what is missing after the bound. */
  async function converged(nodeId: number, bootenv: string): Promise<number> {
    const started = Date.now();
    const deadline = started + deps.convergeTimeoutMs;
    let backoff = 100;
    try {
      for (;;) {
        const missing = await pending(nodeId, bootenv);
        if (missing.length === 0) return Date.now() - started;
        waiting.set(nodeId, { bootenv, missing, since: new Date(started).toISOString() });
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(
            `boot databases did not converge on bootenv ${bootenv} within ${deps.convergeTimeoutMs / 1000} s: ${missing.join('; ')}; the node was not rebooted`,
          );
        // Woken by the provisioner's own node events at once; dhcp-db is asked again after the backoff.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(backoff, left));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
        backoff = Math.min(backoff * 2, 2000);
      }
    } finally {
      waiting.delete(nodeId);
    }
  }

  async function reboot(node: NodeDetail): Promise<string> {
    const key = deps.sshKey();
    if (!key) throw new Error('CROWBAR_SSH_KEY is not set: the provisioner cannot reboot the node over SSH');
    if (!node.sshHostKey)
      throw new Error(`node ${node.name} has no pinned SSH host key: it cannot be rebooted safely`);
    const target = await sshTargetOf(bus, node);
    const session = await connectSsh({
      host: target.host,
      port: target.port,
      username: 'root',
      privateKey: key,
      hostKey: node.sshHostKey,
      timeoutMs: 15_000,
    });
    try {
      // In its own session (dropbear ends the session's process group when the channel closes, nohup or
      // not), so the SSH session closes cleanly before the machine goes down.
      const r = await session.exec('setsid sh -c "sleep 1; reboot" </dev/null >/dev/null 2>&1 &', {
        timeoutMs: 15_000,
      });
      if (r.code !== 0) throw new Error(`reboot on ${node.name} exited ${r.code}: ${r.stderr}`);
    } finally {
      await session.end();
    }
    return `${target.host}:${target.port}`;
  }

  return {
    async load() {
      const rows = await queryText<InstallRequest>(
        deps.database.db,
        `select node_id as "nodeId", bootenv, disk, to_char(rebooted_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as "rebootedAt"
         from provisioner.installs`,
        [],
      );
      for (const r of rows) installs.set(r.nodeId, r);
    },
    /** Install runs waiting for the boot databases, by node. */
    waiting: () => Object.fromEntries(waiting),
    /** The install the node's boot script renders (disk), if one was requested. */
    of: (nodeId: number) => installs.get(nodeId),
    /**
     * The provisioner saw a node change: wakes runs waiting for convergence, and forgets an install the
     * node has left (an operator sent it back to discovery, say), so a new request installs again.
     */
    async nodeSeen(node: NodeSummary) {
      wake();
      const known = installs.get(node.id);
      if (known && node.bootenv !== known.bootenv && node.bootenv !== 'local') await forget(node.id);
    },
    /** `noderole.todo` of provisioner-os-install. */
    async onTodo(nr: NoderoleSummary, correlationId: string) {
      if (nr.role !== osInstallRole) return;
      const r = await request(nr.nodeId, nr, correlationId);
      if ('skip' in r) log.info({ node: nr.nodeId, noderole: nr.id }, `os install not requested: ${r.skip}`);
    },
    /** The role's run: request (idempotent), wait for convergence, reboot into the installer. */
    async run(
      req: { nodeId: number; noderoleId: number; node: string; runId: number },
      correlationId?: string,
    ) {
      const lines: string[] = [];
      const say = (l: string) => {
        lines.push(l);
        log.info({ node: req.nodeId, runId: req.runId }, `os install: ${l}`);
      };
      const r = await request(req.nodeId, { id: req.noderoleId }, correlationId);
      if ('skip' in r) {
        say(`nothing to do: ${r.skip}`);
        return { wall: {}, log: `${lines.join('\n')}\n` };
      }
      say(`bootenv ${r.bootenv}, disk ${r.disk}; waiting for dhcp-db and the provisioner to serve it`);
      const waited = await converged(req.nodeId, r.bootenv);
      say(`both boot databases serve ${r.bootenv} (after ${waited} ms); rebooting the node`);
      const node = await api('node.get', { node: req.nodeId }, correlationId);
      const via = await reboot(node);
      r.rebootedAt = new Date().toISOString();
      await queryText(
        deps.database.db,
        'update provisioner.installs set rebooted_at = $2 where node_id = $1',
        [req.nodeId, r.rebootedAt],
      );
      await bus.request(inventoryRpcs.setAlive, {
        node: req.nodeId,
        alive: false,
        reason: `rebooting into ${r.bootenv}`,
      });
      say(`reboot sent over SSH to ${via}; the node is not alive until the installed system reports in`);
      return {
        wall: { crowbar_wall: { install: { bootenv: r.bootenv, disk: r.disk, convergedMs: waited } } },
        log: `${lines.join('\n')}\n`,
      };
    },
  };
}
export type Installer = ReturnType<typeof createInstaller>;
