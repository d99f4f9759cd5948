import { eq } from 'drizzle-orm';
import {
  ipamMessages,
  type NetworkChanges,
  type NetworkDetail,
  type NetworkInput,
} from '../../shared/catalogue/index.js';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import { type Ctx, globalId, inTx, lockTopology, queueRoleTask, roleName, uniquely } from './context.js';
import { deleteAllocation, fenceRange, findAllocations } from './db/allocation-store.js';
import {
  detailOf,
  getNetwork,
  type NetworkFull,
  otherConduits,
  summaryOf,
  type Tx,
} from './db/network-store.js';
import { networks } from './db/schema.js';
import { autoPrefix, hostV6Bounds } from './domain/ipv6.js';
import { checkConduitSets, parseV6Setting, resolveLinkFlags, type V6Setting } from './domain/rules.js';
import type { EventBatch } from './events.js';
import { insertRange, insertRouter, removeRange } from './ranges.js';

/** Network create/update/delete (reference §5.1): validation, side effects, events, role tasks. */

/** The network named `admin` keeps its conduit and cannot be deleted (reference §5.1). */
export const adminNetworkName = 'admin';

export async function createNetwork(ctx: Ctx, input: NetworkInput): Promise<NetworkDetail> {
  const detail = await inTx(ctx, (tx, events) => createIn(tx, input, events));
  ctx.log.info({ network: detail.name, networkId: detail.id, category: detail.category }, 'network created');
  ctx.kickRoleTasks();
  return detail;
}

export async function createIn(tx: Tx, input: NetworkInput, events: EventBatch): Promise<NetworkDetail> {
  await lockTopology(tx);
  const flags = resolveLinkFlags(input.conduit, input);
  const v6 = parseV6Setting(input.v6prefix);
  checkConduitSets(input.conduit, await otherConduits(tx, null));
  const [net] = await uniquely('network_name_unique', `network ${input.name} already exists`, () =>
    tx
      .insert(networks)
      .values({
        name: input.name,
        description: input.description,
        deploymentId: input.deploymentId,
        category: input.category,
        group: input.group,
        conduit: input.conduit.trim(),
        ...flags,
        useBridge: input.useBridge,
        configure: input.configure,
        pbr: input.pbr,
        order: input.order,
      })
      .returning(),
  );
  let row = net!;
  for (const [i, r] of input.ranges.entries()) {
    if (r.name === 'host-v6' && v6.kind !== 'none')
      throw new ValidationError('host-v6 is created from v6prefix; do not pass it too', {
        field: `ranges.${i}.name`,
      });
    await insertRange(tx, row, r, `ranges.${i}.`);
  }
  row = await applyV6(tx, row, v6);
  let full = await getNetwork(tx, row.id);
  if (input.router) {
    await insertRouter(tx, full, input.router);
    full = await getNetwork(tx, row.id);
  }
  await queueRoleTask(tx, 'define', roleName(row.name));
  events.add(ipamMessages.networkCreated, { network: summaryOf(full) });
  return detailOf(full);
}

/** Materialises the IPv6 prefix and (re)creates the `host-v6` range from it. */
async function applyV6(tx: Tx, net: NetworkFull['net'], v6: V6Setting): Promise<NetworkFull['net']> {
  if (v6.kind === 'none') {
    const [r] = await tx
      .update(networks)
      .set({ v6prefix: null, v6Auto: false })
      .where(eq(networks.id, net.id))
      .returning();
    return r!;
  }
  const prefix = v6.kind === 'auto' ? autoPrefix(await globalId(tx), net.id) : v6.prefix;
  const [r] = await tx
    .update(networks)
    .set({ v6prefix: prefix, v6Auto: v6.kind === 'auto' })
    .where(eq(networks.id, net.id))
    .returning();
  const b = hostV6Bounds(prefix);
  await insertRange(
    tx,
    r!,
    {
      name: 'host-v6',
      first: b.first,
      last: b.last,
      overlap: !r!.configure,
      conduit: null,
      vlan: null,
      useVlan: null,
      useBridge: null,
      teamMode: null,
      useTeam: null,
    },
    'v6prefix.',
  );
  return r!;
}

export async function updateNetwork(ctx: Ctx, ref: number | string, changes: NetworkChanges) {
  const detail = await inTx(ctx, async (tx, events) => {
    await lockTopology(tx);
    const full = await getNetwork(tx, ref, true);
    const n = full.net;
    const conduit = changes.conduit?.trim() ?? n.conduit;
    if (n.name === adminNetworkName && conduit !== n.conduit)
      throw new ValidationError('the conduit of the admin network cannot be changed through the API', {
        field: 'conduit',
      });
    const flags = resolveLinkFlags(conduit, changes, n);
    if (conduit !== n.conduit) checkConduitSets(conduit, await otherConduits(tx, n.id));
    await tx
      .update(networks)
      .set({
        conduit,
        ...flags,
        ...pick(changes, [
          'description',
          'deploymentId',
          'category',
          'group',
          'useBridge',
          'configure',
          'pbr',
          'order',
        ]),
        updatedAt: new Date(),
      })
      .where(eq(networks.id, n.id));
    if (changes.v6prefix !== undefined) {
      const v6 = parseV6Setting(changes.v6prefix);
      const wanted = v6.kind === 'auto' ? 'auto' : v6.kind === 'prefix' ? v6.prefix : null;
      const current = n.v6Auto ? 'auto' : n.v6prefix;
      if (wanted !== current) {
        const old = full.ranges.find((r) => r.name === 'host-v6');
        if (old) {
          const held = (await findAllocations(tx, { networkId: n.id })).filter((a) => a.range === 'host-v6');
          if (held.length > 0)
            throw new ConflictError(`host-v6 of network ${n.name} still holds ${held.length} allocations`, {
              rule: 'v6prefix_in_use',
            });
          await removeRange(tx, full, old, events);
        }
        const [fresh] = await tx.select().from(networks).where(eq(networks.id, n.id));
        await applyV6(tx, fresh!, v6);
      }
    }
    const after = await getNetwork(tx, n.id);
    events.add(ipamMessages.networkChanged, { network: summaryOf(after) });
    return detailOf(after);
  });
  ctx.log.info(
    { network: detail.name, networkId: detail.id, changed: Object.keys(changes) },
    'network changed',
  );
  return detail;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export async function deleteNetwork(ctx: Ctx, ref: number | string): Promise<NetworkDetail> {
  const detail = await inTx(ctx, async (tx, events) => {
    await lockTopology(tx);
    const full = await getNetwork(tx, ref, true);
    if (full.net.name === adminNetworkName)
      throw new ValidationError('the admin network cannot be deleted', { field: 'network' });
    for (const r of full.ranges) await fenceRange(tx, r.id);
    const released = await findAllocations(tx, { networkId: full.net.id });
    for (const a of released) {
      await deleteAllocation(tx, a.id);
      events.allocationDeleted(a);
    }
    await tx.delete(networks).where(eq(networks.id, full.net.id));
    await queueRoleTask(tx, 'delete', roleName(full.net.name));
    events.add(ipamMessages.networkDeleted, { network: summaryOf(full) });
    return detailOf(full);
  });
  ctx.log.info({ network: detail.name, networkId: detail.id }, 'network deleted');
  ctx.kickRoleTasks();
  return detail;
}
