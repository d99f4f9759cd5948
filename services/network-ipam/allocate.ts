import {
  type AllocationSummary,
  inventoryRpcs,
  ipamMessages,
  wireType,
} from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.js';
import { type Ctx, inTx, roleName } from './context.js';
import { allocationById, deleteAllocation, lowestGap } from './db/allocation-store.js';
import { claim, existingFor, loadContext, returnToPool } from './db/claim.js';
import {
  cidrOf,
  type NetworkRow,
  type RangeRow,
  rangeFirst,
  rangeLast,
  type Tx,
} from './db/network-store.js';
import { findNode, type NodeRow, upsertNode } from './db/node-store.js';
import {
  type Cidr,
  formatCidr,
  formatIp,
  hostPartOf,
  type Ip,
  maskOf,
  networkOf,
  parseCidr,
  parseIp,
} from './domain/address.js';
import { md5Address } from './domain/ipv6.js';
import type { EventBatch } from './events.js';

/**
 * The allocation algorithm (reference §5.5) with the database as referee: the pool row or the unique
 * address index decides every race; a lost race moves on to the next candidate.
 */

const maxAttempts = 64;

/** Finds a node in the projection, asking inventory once when it has not arrived yet. */
export async function resolveNode(ctx: Ctx, ref: number | string): Promise<NodeRow> {
  const known = await findNode(ctx.database.db, ref);
  if (known) return known;
  try {
    const asked = new Date();
    const n = await ctx.bus.request(inventoryRpcs.getNode, { node: ref }, { timeoutMs: 2000 });
    await upsertNode(ctx.database.db, n, asked);
    return (await findNode(ctx.database.db, n.id))!;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof UnavailableError)
      throw new NotFoundError(`node ${ref} is not known`, { field: 'node', cause: err });
    throw err;
  }
}

/**
 * The node's hint `<network>-v4addr` (IPv4 ranges) or `<network>-v6addr` (IPv6), if it holds an address
 * of that family. Anything else is logged and ignored: the allocation goes on as if there were no hint.
 */
function hintedAddress(ctx: Ctx, node: NodeRow, network: string, family: string): Cidr | null {
  const key = `${network}-${family === 'ipv4' ? 'v4' : 'v6'}addr`;
  const raw = node.addressHints[key];
  if (raw === undefined) return null;
  const ip = parseCidr(raw, { bareAllowed: true });
  if (ip?.family === family) return ip;
  ctx.log.warn(
    { node: node.name, hint: key, value: raw },
    'address hint is not an address of that family; ignored',
  );
  return null;
}

const inRange = (r: RangeRow, ip: Ip) =>
  ip.family === r.family && ip.value >= rangeFirst(r).value && ip.value <= rangeLast(r).value;

/** Ranges `auto_allocate` uses: `admin` for admin nodes when present, else `host`; plus `host-v6`. */
export function autoRanges(ranges: RangeRow[], node: Pick<NodeRow, 'admin'>): RangeRow[] {
  const byName = (n: string) => ranges.find((r) => r.name === n);
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

interface Target {
  ctx: Ctx;
  net: NetworkRow;
  node: NodeRow;
  range: RangeRow;
  bindRole: string | null;
}

function summary(t: Target, id: number, address: string): AllocationSummary {
  const ip = parseIp(address)!;
  return {
    id,
    nodeId: t.node.id,
    node: t.node.name,
    networkId: t.net.id,
    network: t.net.name,
    category: t.net.category as AllocationSummary['category'],
    range: t.range.name,
    address: formatCidr({ ...ip, prefix: t.range.prefix }),
    family: t.range.family as Ip['family'],
  };
}

/**
 * `range.allocate(node, suggestion)` (reference §5.5 step 4): the suggestion if inside the range and
 * free, else the host part of the node's admin address, else the lowest free address. Each claim is one
 * statement; a lost race moves on to the next candidate.
 */
async function allocateInRange(
  t: Target,
  preferred: string[],
): Promise<{ allocation: AllocationSummary; created: boolean }> {
  const { ctx, range: r } = t;
  const db = ctx.database.db;
  const envelope = ctx.bus.envelope(wireType(ipamMessages.allocationCreated), {
    allocation: summary(t, 1, formatIp({ family: r.family as Ip['family'], value: 0n })),
  });
  const base = {
    range: r,
    nodeId: t.node.id,
    networkId: t.net.id,
    envelope,
    subject: ipamMessages.allocationCreated.subject,
    bindRole: t.bindRole,
  };
  const queue = [...new Set(preferred)];
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    let candidates: string[];
    if (r.pooled) candidates = queue.splice(0, 2);
    else {
      const next = queue.shift() ?? (await lowestGap(db, r));
      if (next === null) throw exhausted(t);
      candidates = [next];
    }
    const res = await claim(ctx.claims, { ...base, preferred: candidates, lowest: r.pooled });
    if (res.inserted) {
      const a = summary(t, res.inserted.id, res.inserted.address);
      ctx.log.info(
        { allocationId: a.id, node: a.node, network: a.network, range: a.range, address: a.address },
        'address allocated',
      );
      return { allocation: a, created: true };
    }
    if (res.picked === null) {
      if (r.pooled) throw exhausted(t);
      // The candidate is no longer inside the range as stored: it changed or went away meanwhile.
      throw new RangeMoved();
    }
    // Lost a race: either this node got an address in the range meanwhile, or the address was held.
    const mine = await existingFor(db, r.id, t.node.id);
    if (mine) {
      if (r.pooled && res.picked) await returnToPool(db, r.id, res.picked);
      return { allocation: summary(t, mine.id, mine.address), created: false };
    }
  }
  throw new UnavailableError(`range ${r.name} of network ${t.net.name} is too busy; retry`);
}

const exhausted = (t: Target) =>
  new ConflictError(`range ${t.range.name} of network ${t.net.name} has no free address`, {
    rule: 'range_exhausted',
  });

/** A range changed or vanished under a claim; the allocation starts again from fresh state. */
class RangeMoved extends Error {}

export async function allocate(ctx: Ctx, req: AllocateRequest): Promise<AllocationSummary[]> {
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
      return await allocateOnce(ctx, req, suggestion);
    } catch (err) {
      if (!(err instanceof RangeMoved)) throw err;
      if (round >= 3) throw new UnavailableError(`network ${req.network} keeps changing; retry`);
    }
  }
}

async function allocateOnce(ctx: Ctx, req: AllocateRequest, suggestion: Cidr | null) {
  let c = await loadContext(ctx.claims, req.node, req.network);
  if (!c.network) throw new NotFoundError(`network ${req.network} not found`, { field: 'network' });
  if (!c.node) {
    await resolveNode(ctx, req.node);
    c = await loadContext(ctx.claims, req.node, req.network);
  }
  const net = c.network!;
  const node = c.node!;
  let targets: RangeRow[];
  if (req.range) {
    const r = c.ranges.find((x) => x.name === req.range);
    if (!r) throw new NotFoundError(`network ${net.name} has no range ${req.range}`, { field: 'range' });
    if (suggestion && !inRange(r, suggestion))
      throw new ValidationError(`suggestion ${req.suggestion} is outside range ${req.range}`, {
        field: 'suggestion',
      });
    targets = [r];
  } else targets = autoRanges(c.ranges, node);
  const out: AllocationSummary[] = [];
  let created = false;
  for (const r of targets) {
    const t: Target = { ctx, net, node, range: r, bindRole: req.bind ? roleName(net.name) : null };
    const existing = c.existing.find((e) => e.rangeId === r.id);
    if (existing) {
      out.push(summary(t, existing.id, existing.address));
      continue;
    }
    const preferred: string[] = [];
    let hint = suggestion && suggestion.family === r.family ? suggestion : null;
    // Without a suggestion, the address the operator hinted for this network (reference §5.5 step 2).
    if (!suggestion) hint = hintedAddress(ctx, node, net.name, r.family);
    // The md5 interface ID is the default v6 suggestion on managed networks (reference §5.7).
    if (!hint && r.family === 'ipv6' && net.configure) hint = md5Address(rangeFirst(r), node.name);
    if (hint && inRange(r, hint)) preferred.push(formatIp(hint));
    // Without any hint an unconfigured network hands out nothing (reference §5.5 step 3).
    if (!hint && !net.configure) continue;
    const admin = c.admin.find((a) => a.family === r.family);
    if (admin) {
      const first = rangeFirst(r);
      const host = hostPartOf(cidrOf(admin.address, admin.prefix)) & ~maskOf(first.family, first.prefix);
      const aligned: Ip = { family: first.family, value: networkOf(first) | host };
      if (inRange(r, aligned)) preferred.push(formatIp(aligned));
    }
    const got = await allocateInRange(t, preferred);
    out.push(got.allocation);
    created ||= got.created;
  }
  if (created) {
    ctx.kickOutbox();
    if (req.bind) ctx.kickRoleTasks();
  }
  return out;
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
