import { type AllocationSummary, inventoryRpcs } from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.js';
import { type Ctx, inTx, queueRoleTask, roleName } from './context.js';
import {
  adminAddressOf,
  allocationById,
  deleteAllocation,
  existingInRange,
  insertAllocation,
  lowestGap,
  takeFromPool,
  takeSpecific,
} from './db/allocation-store.js';
import {
  getNetwork,
  type NetworkFull,
  type RangeRow,
  rangeFirst,
  rangeLast,
  type Tx,
} from './db/network-store.js';
import { findNode, type NodeRow, upsertNode } from './db/node-store.js';
import { type Cidr, formatIp, hostPartOf, type Ip, maskOf, networkOf, parseCidr } from './domain/address.js';
import { md5Address } from './domain/ipv6.js';
import type { EventBatch } from './events.js';
import { requireRange } from './ranges.js';

/**
 * The allocation algorithm (reference §5.5) with the database as referee: the pool row or the unique
 * address index decides every race; a lost race moves on to the next candidate.
 */

/** Thrown inside a transaction when another request allocated for the same node and range meanwhile. */
class NodeRaced extends Error {}

const maxAttempts = 64;

/** Finds a node in the projection, asking inventory once when it has not arrived yet. */
export async function resolveNode(ctx: Ctx, ref: number | string): Promise<NodeRow> {
  const known = await findNode(ctx.database.db, ref);
  if (known) return known;
  try {
    const n = await ctx.bus.request(inventoryRpcs.getNode, { node: ref }, { timeoutMs: 2000 });
    await upsertNode(ctx.database.db, n);
    return (await findNode(ctx.database.db, n.id))!;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof UnavailableError)
      throw new NotFoundError(`node ${ref} is not known`, { field: 'node', cause: err });
    throw err;
  }
}

const inRange = (r: RangeRow, ip: Ip) =>
  ip.family === r.family && ip.value >= rangeFirst(r).value && ip.value <= rangeLast(r).value;

async function claim(tx: Tx, net: NetworkFull['net'], r: RangeRow, node: NodeRow, address: string) {
  const id = await insertAllocation(tx, {
    nodeId: node.id,
    networkId: net.id,
    rangeId: r.id,
    family: r.family as Ip['family'],
    address,
  });
  if (id !== null) return id;
  if (await existingInRange(tx, r.id, node.id)) throw new NodeRaced();
  return null;
}

/** `range.allocate(node, suggestion)`; returns null when nothing should be allocated (configure=false). */
async function allocateInRange(
  tx: Tx,
  full: NetworkFull,
  r: RangeRow,
  node: NodeRow,
  suggestion: Cidr | null,
): Promise<{ allocation: AllocationSummary; created: boolean } | null> {
  const existing = await existingInRange(tx, r.id, node.id);
  if (existing) return { allocation: existing, created: false };
  let hint = suggestion;
  if (!hint && r.family === 'ipv6') hint = md5Address(rangeFirst(r), node.name);
  if (!hint && !full.net.configure) return null;
  let id: number | null = null;
  if (hint && inRange(r, hint) && (await takeSpecific(tx, r, formatIp(hint))))
    id = await claim(tx, full.net, r, node, formatIp(hint));
  if (id === null) {
    // Host-part alignment with the node's admin address of the same group and family.
    const admin = await adminAddressOf(tx, node.id, r.family as Ip['family'], full.net.group, full.net.id);
    if (admin) {
      const first = rangeFirst(r);
      const value = networkOf(first) | (hostPartOf(admin) & ~maskOf(first.family, first.prefix));
      const aligned: Ip = { family: first.family, value };
      if (inRange(r, aligned) && (await takeSpecific(tx, r, formatIp(aligned))))
        id = await claim(tx, full.net, r, node, formatIp(aligned));
    }
  }
  for (let attempt = 0; id === null && attempt < maxAttempts; attempt++) {
    const address = r.pooled ? await takeFromPool(tx, r.id) : await lowestGap(tx, r);
    if (address === null)
      throw new ConflictError(`range ${r.name} of network ${full.net.name} has no free address`, {
        rule: 'range_exhausted',
      });
    id = await claim(tx, full.net, r, node, address);
  }
  if (id === null)
    throw new UnavailableError(`range ${r.name} of network ${full.net.name} is too busy; retry`);
  return { allocation: (await allocationById(tx, id))!, created: true };
}

/** Ranges `auto_allocate` uses: `admin` for admin nodes when present, else `host`; plus `host-v6`. */
export function autoRanges(full: NetworkFull, node: Pick<NodeRow, 'admin'>): RangeRow[] {
  const byName = (n: string) => full.ranges.find((r) => r.name === n);
  const v4 = (node.admin ? byName('admin') : undefined) ?? byName('host');
  const v6 = byName('host-v6');
  return [v4, v6].filter((r): r is RangeRow => r !== undefined);
}

export interface AllocateRequest {
  node: number | string;
  network: number | string;
  range?: string | undefined;
  suggestion?: string | undefined;
  /** Queue a bindRole for the network role (API path); the on_proposed path is already bound. */
  bind: boolean;
}

export async function allocate(ctx: Ctx, req: AllocateRequest): Promise<AllocationSummary[]> {
  const node = await resolveNode(ctx, req.node);
  let suggestion: Cidr | null = null;
  if (req.suggestion !== undefined) {
    suggestion = parseCidr(req.suggestion, { bareAllowed: true });
    if (!suggestion)
      throw new ValidationError(`suggestion "${req.suggestion}" is not an IP address`, {
        field: 'suggestion',
      });
  }
  for (let round = 0; ; round++) {
    try {
      const { out, created } = await inTx(ctx, async (tx, events) => {
        const full = await getNetwork(tx, req.network);
        const targets = req.range ? [requireRange(full, req.range)] : autoRanges(full, node);
        if (req.range && suggestion && !inRange(targets[0]!, suggestion))
          throw new ValidationError(`suggestion ${req.suggestion} is outside range ${req.range}`, {
            field: 'suggestion',
          });
        const out: AllocationSummary[] = [];
        const created: AllocationSummary[] = [];
        for (const r of targets) {
          const hint = suggestion && suggestion.family === r.family ? suggestion : null;
          const got = await allocateInRange(tx, full, r, node, hint);
          if (!got) continue;
          out.push(got.allocation);
          if (got.created) created.push(got.allocation);
        }
        for (const a of created) events.allocationCreated(a);
        if (req.bind && out.length > 0) await queueRoleTask(tx, 'bind', roleName(full.net.name), node.id);
        return { out, created, events };
      });
      for (const a of created)
        ctx.log.info(
          { allocationId: a.id, node: a.node, network: a.network, range: a.range, address: a.address },
          'address allocated',
        );
      if (req.bind && out.length > 0) ctx.kickRoleTasks();
      return out;
    } catch (err) {
      // Another request allocated for this node meanwhile: rerun, which finds and returns its result.
      if (err instanceof NodeRaced && round < 3) continue;
      throw err;
    }
  }
}

/** Releases one allocation; its address goes back to the range's free pool. */
export async function release(ctx: Ctx, id: number): Promise<AllocationSummary> {
  const a = await inTx(ctx, async (tx, events) => {
    const found = await allocationById(tx, id);
    if (!found || !(await deleteAllocation(tx, id)))
      throw new NotFoundError(`allocation ${id} not found`, { field: 'id' });
    events.allocationDeleted(found);
    return found;
  });
  ctx.log.info(
    { allocationId: a.id, node: a.node, network: a.network, address: a.address },
    'address released',
  );
  return a;
}

/** Releases every allocation of a node (node deleted in inventory). */
export async function releaseNode(tx: Tx, nodeId: number, events: EventBatch, list: AllocationSummary[]) {
  for (const a of list) {
    if (a.nodeId !== nodeId) continue;
    await deleteAllocation(tx, a.id);
    events.allocationDeleted(a);
  }
}
