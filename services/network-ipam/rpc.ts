import type { Subscription } from '@nats-io/transport-node';
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { ipamMessages, ipamRpcs, type RpcDef, roleRun } from '../../shared/catalogue/index.js';
import { asJsonObject } from '../../shared/catalogue/json.js';
import { NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.js';
import { allocate, release, resolveNode } from './allocate.js';
import { type Ctx, globalId, inTx, pgCode } from './context.js';
import { allocationById, findAllocations } from './db/allocation-store.js';
import {
  detailOf,
  getNetwork,
  listNetworks,
  type NetworkFull,
  type Q,
  rangeDetailOf,
  rangeFirst,
  rangeLast,
  routerDetailOf,
  summaryOf,
  type Tx,
} from './db/network-store.js';
import { findNode } from './db/node-store.js';
import { routers } from './db/schema.js';
import { parseIp } from './domain/address.js';
import { ConduitError } from './domain/conduit.js';
import { ulaPrefix48 } from './domain/ipv6.js';
import { networkWall } from './domain/sysdata.js';
import { createNetwork, deleteNetwork, updateNetwork } from './networks.js';
import {
  changeRange,
  insertRange,
  insertRouter,
  removeRange,
  requireRange,
  routerAddress,
} from './ranges.js';

type Serve = ReturnType<typeof guardedServe>;
type Events = Parameters<Parameters<typeof inTx>[1]>[1];

/** Answers every RPC network-ipam owns. Handlers validate nothing themselves: the bus parsed the request. */
export function serveRpcs(ctx: Ctx): Subscription[] {
  const serve = guardedServe(ctx);
  return [
    ...networkRpcs(ctx, serve),
    ...rangeRpcs(ctx, serve),
    ...routerRpcs(ctx, serve),
    ...allocationRpcs(ctx, serve),
    serve(roleRun['network-ipam'], async (q) => runNetworkRole(ctx, q)),
  ];
}

function networkRpcs(ctx: Ctx, serve: Serve): Subscription[] {
  const db = ctx.database.db;
  return [
    serve(ipamRpcs.networkCreate, (q) => createNetwork(ctx, q)),
    serve(ipamRpcs.networkGet, async (q) => detailOf(await getNetwork(db, q.network))),
    serve(ipamRpcs.networkList, async (q) => ({ networks: (await listNetworks(db, q)).map(detailOf) })),
    serve(ipamRpcs.networkUpdate, (q) => updateNetwork(ctx, q.network, q.changes)),
    serve(ipamRpcs.networkDelete, (q) => deleteNetwork(ctx, q.network)),
    serve(ipamRpcs.networkLookup, async (q) => {
      const ip = parseIp(q.ip);
      if (!ip) throw new ValidationError(`ip "${q.ip}" is not an IP address`, { field: 'ip' });
      const nets = await listNetworks(db);
      const holds = (f: NetworkFull) =>
        f.ranges.some(
          (r) =>
            !r.overlap &&
            r.family === ip.family &&
            ip.value >= rangeFirst(r).value &&
            ip.value <= rangeLast(r).value,
        );
      const hit =
        nets.find((f) => f.net.category === q.category && holds(f)) ??
        nets.find((f) => f.net.category === 'unmanaged');
      if (!hit)
        throw new NotFoundError(`no ${q.category} network holds ${q.ip} and there is no unmanaged network`, {
          field: 'ip',
        });
      return detailOf(hit);
    }),
    serve(ipamRpcs.ulaPrefix, async () => {
      const id = await globalId(db);
      return { globalId: id, prefix: ulaPrefix48(id) };
    }),
  ];
}

function rangeRpcs(ctx: Ctx, serve: Serve): Subscription[] {
  const db = ctx.database.db;
  return [
    serve(ipamRpcs.rangeCreate, (q) =>
      inTx(ctx, async (tx, events) => {
        const full = await getNetwork(tx, q.network, true);
        if (q.range.name === 'host-v6' && full.net.v6prefix)
          throw new ValidationError('host-v6 is managed through v6prefix', { field: 'range.name' });
        const row = await insertRange(tx, full.net, q.range, 'range.');
        await changed(tx, full, events);
        return rangeDetailOf(row, full.net.name);
      }),
    ),
    serve(ipamRpcs.rangeGet, async (q) => {
      const { full, range } = await rangeOf(db, q.range, q.network);
      return rangeDetailOf(range, full.net.name);
    }),
    serve(ipamRpcs.rangeList, async (q) => {
      const nets = q.network === undefined ? await listNetworks(db) : [await getNetwork(db, q.network)];
      return { ranges: nets.flatMap((f) => f.ranges.map((r) => rangeDetailOf(r, f.net.name))) };
    }),
    serve(ipamRpcs.rangeUpdate, (q) =>
      inTx(ctx, async (tx, events) => {
        const { full, range } = await rangeOf(tx, q.range, q.network);
        const row = await changeRange(tx, full, range, q.changes);
        await changed(tx, full, events);
        return rangeDetailOf(row, full.net.name);
      }),
    ),
    serve(ipamRpcs.rangeDelete, (q) =>
      inTx(ctx, async (tx, events) => {
        const { full, range } = await rangeOf(tx, q.range, q.network);
        await removeRange(tx, full, range, events);
        await changed(tx, full, events);
        return rangeDetailOf(range, full.net.name);
      }),
    ),
  ];
}

function routerRpcs(ctx: Ctx, serve: Serve): Subscription[] {
  const db = ctx.database.db;
  return [
    serve(ipamRpcs.routerCreate, (q) =>
      inTx(ctx, async (tx, events) => {
        const full = await getNetwork(tx, q.network, true);
        const row = await insertRouter(tx, full, q.router);
        await changed(tx, full, events);
        return routerDetailOf(row, full.net.name);
      }),
    ),
    serve(ipamRpcs.routerGet, async (q) => {
      const { full, row } = await routerOf(db, q.router);
      return routerDetailOf(row, full.net.name);
    }),
    serve(ipamRpcs.routerList, async (q) => {
      const nets = q.network === undefined ? await listNetworks(db) : [await getNetwork(db, q.network)];
      return { routers: nets.flatMap((f) => f.routers.map((r) => routerDetailOf(r, f.net.name))) };
    }),
    serve(ipamRpcs.routerUpdate, (q) =>
      inTx(ctx, async (tx, events) => {
        const { full, row } = await routerOf(tx, q.router);
        const addr =
          q.changes.address !== undefined
            ? routerAddress(full, { ...q.changes, family: row.family as 'ipv4' | 'ipv6' }, 'changes.')
            : { address: row.address, prefix: row.prefix };
        const [upd] = await tx
          .update(routers)
          .set({
            address: addr.address,
            prefix: addr.prefix,
            pref: q.changes.pref ?? row.pref,
            updatedAt: new Date(),
          })
          .where(eq(routers.id, row.id))
          .returning();
        await changed(tx, full, events);
        return routerDetailOf(upd!, full.net.name);
      }),
    ),
    serve(ipamRpcs.routerDelete, (q) =>
      inTx(ctx, async (tx, events) => {
        const { full, row } = await routerOf(tx, q.router);
        await tx.delete(routers).where(eq(routers.id, row.id));
        await changed(tx, full, events);
        return routerDetailOf(row, full.net.name);
      }),
    ),
  ];
}

function allocationRpcs(ctx: Ctx, serve: Serve): Subscription[] {
  const { database } = ctx;
  const db = database.db;
  return [
    serve(ipamRpcs.allocate, async (q) => ({
      allocations: await allocate(ctx, { ...q, bind: true }),
    })),
    serve(ipamRpcs.allocationGet, async (q) => {
      const a = await allocationById(db, q.id);
      if (!a) throw new NotFoundError(`allocation ${q.id} not found`, { field: 'id' });
      return a;
    }),
    serve(ipamRpcs.allocationRelease, (q) => release(ctx, q.id)),
    serve(ipamRpcs.allocationFind, async (q) => {
      let nodeIds: number[] | undefined;
      if (q.node === 'admin') {
        const res = await database.pool.query<{ id: number }>(
          'select id from network_ipam.nodes where admin',
        );
        nodeIds = res.rows.map((r) => r.id);
      } else if (q.node !== undefined) {
        const n = await findNode(db, q.node);
        if (!n) throw new NotFoundError(`node ${q.node} is not known`, { field: 'node' });
        nodeIds = [n.id];
      }
      const networkId = q.network === undefined ? undefined : (await getNetwork(db, q.network)).net.id;
      return { allocations: await findAllocations(db, { nodeIds, networkId, category: q.category }) };
    }),
    serve(ipamMessages.nodeAddresses, async (q) => ({
      allocations: await findAllocations(db, {
        nodeIds: [q.nodeId],
        category: q.category,
        networkId: q.network === undefined ? undefined : (await getNetwork(db, q.network)).net.id,
      }),
    })),
    serve(ipamMessages.listAllocations, async (q) => ({
      allocations: await findAllocations(db, { afterId: q.afterId, limit: q.limit }),
    })),
  ];
}

/** The network again after a change, announced as `network.changed` with the transaction's events. */
async function changed(tx: Tx, full: NetworkFull, events: Events) {
  const after = await getNetwork(tx, full.net.id);
  events.add(ipamMessages.networkChanged, { network: summaryOf(after) });
  return after;
}

/** A range by id, or by name within its network. */
async function rangeOf(tx: Q, ref: number | string, network: number | string | undefined) {
  if (typeof ref === 'number' || /^\d+$/.test(ref)) {
    const nets = await listNetworks(tx);
    const full = nets.find((f) => f.ranges.some((r) => r.id === Number(ref)));
    if (!full) throw new NotFoundError(`range ${ref} not found`, { field: 'range' });
    return { full, range: full.ranges.find((r) => r.id === Number(ref))! };
  }
  if (network === undefined)
    throw new ValidationError('a range named by name needs its network', { field: 'network' });
  const full = await getNetwork(tx, network);
  return { full, range: requireRange(full, ref) };
}

async function routerOf(tx: Q, id: number) {
  const [row] = await tx.select().from(routers).where(eq(routers.id, id));
  if (!row) throw new NotFoundError(`router ${id} not found`, { field: 'router' });
  return { full: await getNetwork(tx, row.networkId), row };
}

/** PostgreSQL classes meaning "try again later": connection trouble, out of resources, shutting down. */
const transientPg = /^(08|53|57P)/;

/** `bus.serve` that answers database overload or outage as UnavailableError (503), not as internal (500). */
function guardedServe(ctx: Ctx) {
  return <Q extends z.ZodType, R extends z.ZodType>(
    def: RpcDef<Q, R>,
    handler: (req: z.infer<Q>) => Promise<z.input<R>>,
  ): Subscription =>
    ctx.bus.serve(def, async (req) => {
      try {
        return await handler(req);
      } catch (err) {
        const code = pgCode(err);
        if (code && transientPg.test(code))
          throw new UnavailableError(`network-ipam database unavailable (${code}); retry`, { cause: err });
        throw err;
      }
    });
}

const nicList = z.array(
  z.object({ name: z.string().min(1), bus: z.string().default(''), speeds: z.array(z.string()).min(1) }),
);

/** The run of `network-<name>` on a node: its addresses and everything needed to configure them. */
async function runNetworkRole(
  ctx: Ctx,
  q: { role: string; nodeId: number; node: string; data: Record<string, unknown> },
) {
  if (!q.role.startsWith('network-'))
    throw new ValidationError(`network-ipam does not run role ${q.role}`, { field: 'role' });
  const db = ctx.database.db;
  const full = await getNetwork(db, q.role.slice('network-'.length));
  const node = (await findNode(db, q.nodeId)) ?? (await resolveNode(ctx, q.nodeId));
  let mine = await findAllocations(db, { nodeIds: [node.id], networkId: full.net.id });
  if (mine.length === 0) mine = await allocate(ctx, { node: node.id, network: full.net.id, bind: false });
  const others = await findAllocations(db, { networkId: full.net.id, limit: 64 });
  const wallIn = (q.data.crowbar_wall as { network?: { nics?: unknown } } | undefined)?.network?.nics;
  const parsedNics = nicList.safeParse(q.data.nics ?? wallIn);
  const busOrder = z.array(z.string()).safeParse(q.data.network_bus_order);
  try {
    const wall = networkWall({
      network: detailOf(full),
      allocations: mine,
      targets: others
        .filter((a) => a.nodeId !== node.id)
        .slice(0, 16)
        .map((a) => a.address),
      nics: parsedNics.success ? parsedNics.data : null,
      busOrder: busOrder.success ? busOrder.data : [],
    });
    const log = parsedNics.success
      ? 'conduit resolved against the node NICs'
      : 'node NICs not known; conduit left unresolved';
    return { wall: asJsonObject(wall), log };
  } catch (err) {
    if (err instanceof ConduitError) throw new ValidationError(err.message, { field: 'conduit' });
    throw err;
  }
}
