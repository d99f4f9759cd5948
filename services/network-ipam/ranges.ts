import { eq } from 'drizzle-orm';
import type { RangeInput, RouterInput } from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, ValidationError } from '../../shared/errors.js';
import { lockTopology, uniquely } from './context.js';
import { deleteAllocation, fenceRange, fillPool, findAllocations, poolLimit } from './db/allocation-store.js';
import {
  allRangeBounds,
  type NetworkFull,
  otherConduits,
  type RangeRow,
  rangeFirst,
  type Tx,
} from './db/network-store.js';
import { ranges, routers } from './db/schema.js';
import { formatIp, inSubnet, parseCidr } from './domain/address.js';
import { checkConduit, checkConduitSets, checkNoOverlap, checkRange } from './domain/rules.js';
import type { EventBatch } from './events.js';

/** Optional fields that may also be explicitly undefined (zod partials). */
type Loose<T> = { [K in keyof T]?: T[K] | undefined };

/**
 * Writing ranges and routers inside a caller's transaction (network create, range/router RPCs).
 * `at` prefixes field names for inline ranges, e.g. `ranges.1.`.
 */
export async function insertRange(
  tx: Tx,
  net: NetworkFull['net'],
  input: RangeInput,
  at = '',
): Promise<RangeRow> {
  await lockTopology(tx);
  const checked = checkRange(input, net, at);
  checkRangeLink(input, net, at);
  if (input.conduit !== null) checkConduitSets(input.conduit, await otherConduits(tx, null), `${at}conduit`);
  checkNoOverlap(
    { family: checked.family, first: checked.first.value, last: checked.last.value, overlap: input.overlap },
    await allRangeBounds(tx),
    `${at}first`,
  );
  const size = checked.last.value - checked.first.value + 1n;
  const [row] = await uniquely(
    'range_name_unique',
    `network ${net.name} already has a range named ${input.name}`,
    () =>
      tx
        .insert(ranges)
        .values({
          networkId: net.id,
          name: input.name,
          family: checked.family,
          first: formatIp(checked.first),
          last: formatIp(checked.last),
          prefix: checked.first.prefix,
          overlap: input.overlap,
          conduit: input.conduit,
          vlan: input.vlan,
          useVlan: input.useVlan,
          useBridge: input.useBridge,
          teamMode: input.teamMode,
          useTeam: input.useTeam,
          allowAnonLeases: checked.allowAnonLeases,
          allowBoundLeases: checked.allowBoundLeases,
          anonLeaseTime: checked.anonLeaseTime,
          boundLeaseTime: checked.boundLeaseTime,
          pooled: !input.overlap && size <= BigInt(poolLimit),
        })
        .returning(),
  );
  await fillPool(tx, row!);
  return row!;
}

/** Per-range overrides follow the network rules with the network's values as fallback. */
function checkRangeLink(input: Loose<RangeInput>, net: NetworkFull['net'], at: string) {
  const vlan = input.vlan ?? null;
  if (vlan !== null && (vlan < 1 || vlan > 4094))
    throw new ValidationError(`vlan ${vlan} is not a usable VLAN tag (1..4094)`, { field: `${at}vlan` });
  if (input.useVlan && vlan === null && !net.useVlan)
    throw new ValidationError('useVlan needs a vlan on the range or its network', { field: `${at}vlan` });
  const teamMode = input.teamMode ?? null;
  if (teamMode !== null && (teamMode < 0 || teamMode > 6))
    throw new ValidationError(`teamMode ${teamMode} is not a Linux bonding mode (0..6)`, {
      field: `${at}teamMode`,
    });
  const conduit = input.conduit ?? null;
  if (conduit !== null) checkConduit(conduit, input.useTeam ?? net.useTeam, `${at}conduit`, `${at}useTeam`);
}

/** Releases every allocation of a range (announcing each), then deletes it. */
export async function removeRange(tx: Tx, full: NetworkFull, range: RangeRow, events: EventBatch) {
  await fenceRange(tx, range.id);
  for (const a of await findAllocations(tx, { networkId: full.net.id })) {
    if (a.range !== range.name) continue;
    await deleteAllocation(tx, a.id);
    events.allocationDeleted(a);
  }
  await tx.delete(ranges).where(eq(ranges.id, range.id));
}

/** Applies changes to a range; allocations must stay inside its new bounds. */
export async function changeRange(
  tx: Tx,
  full: NetworkFull,
  range: RangeRow,
  changes: Loose<RangeInput>,
): Promise<RangeRow> {
  await lockTopology(tx);
  const merged: RangeInput = {
    name: range.name,
    first: changes.first ?? `${range.first}/${range.prefix}`,
    last: changes.last ?? `${range.last}/${range.prefix}`,
    overlap: changes.overlap ?? range.overlap,
    conduit: changes.conduit !== undefined ? changes.conduit : range.conduit,
    vlan: changes.vlan !== undefined ? changes.vlan : range.vlan,
    useVlan: changes.useVlan !== undefined ? changes.useVlan : range.useVlan,
    useBridge: changes.useBridge !== undefined ? changes.useBridge : range.useBridge,
    teamMode: changes.teamMode !== undefined ? changes.teamMode : range.teamMode,
    useTeam: changes.useTeam !== undefined ? changes.useTeam : range.useTeam,
    allowAnonLeases: changes.allowAnonLeases ?? range.allowAnonLeases,
    allowBoundLeases: changes.allowBoundLeases ?? range.allowBoundLeases,
    anonLeaseTime: changes.anonLeaseTime ?? range.anonLeaseTime,
    boundLeaseTime: changes.boundLeaseTime ?? range.boundLeaseTime,
  };
  const checked = checkRange(merged, full.net);
  checkRangeLink(merged, full.net, '');
  if (merged.conduit !== null)
    checkConduitSets(merged.conduit, await otherConduits(tx, null, range.id), 'conduit');
  const others = (await allRangeBounds(tx)).filter((b) => b.id !== range.id);
  checkNoOverlap(
    { family: checked.family, first: checked.first.value, last: checked.last.value, overlap: merged.overlap },
    others,
  );
  await fenceRange(tx, range.id);
  const held = (await findAllocations(tx, { networkId: full.net.id })).filter((a) => a.range === range.name);
  for (const a of held) {
    const c = parseCidr(a.address)!;
    if (c.value < checked.first.value || c.value > checked.last.value)
      throw new ConflictError(
        `allocation ${a.address} of node ${a.node} would fall outside range ${range.name}`,
        {
          rule: 'range_keeps_allocations',
        },
      );
  }
  const size = checked.last.value - checked.first.value + 1n;
  const [row] = await tx
    .update(ranges)
    .set({
      first: formatIp(checked.first),
      last: formatIp(checked.last),
      prefix: checked.first.prefix,
      overlap: merged.overlap,
      conduit: merged.conduit,
      vlan: merged.vlan,
      useVlan: merged.useVlan,
      useBridge: merged.useBridge,
      teamMode: merged.teamMode,
      useTeam: merged.useTeam,
      allowAnonLeases: checked.allowAnonLeases,
      allowBoundLeases: checked.allowBoundLeases,
      anonLeaseTime: checked.anonLeaseTime,
      boundLeaseTime: checked.boundLeaseTime,
      pooled: !merged.overlap && size <= BigInt(poolLimit),
      updatedAt: new Date(),
    })
    .where(eq(ranges.id, range.id))
    .returning();
  await fillPool(tx, row!);
  return row!;
}

/** Adds the network's router for one family (address defaults to the first address of its first range). */
export async function insertRouter(tx: Tx, full: NetworkFull, input: RouterInput, at = 'router.') {
  const { family, address, prefix } = routerAddress(full, input, at);
  const [row] = await uniquely(
    'router_per_family',
    `network ${full.net.name} already has an ${family} router`,
    () =>
      tx
        .insert(routers)
        .values({ networkId: full.net.id, family, address, prefix, pref: input.pref })
        .returning(),
  );
  return row!;
}

export function routerAddress(full: NetworkFull, input: Loose<RouterInput>, at: string) {
  if (input.address !== undefined) {
    const c = parseCidr(input.address);
    if (!c)
      throw new ValidationError(`router address "${input.address}" is not an address in CIDR form`, {
        field: `${at}address`,
      });
    if (input.family && input.family !== c.family)
      throw new ValidationError(`router address ${input.address} is not ${input.family}`, {
        field: `${at}family`,
      });
    const home = full.ranges.find((r) => r.family === c.family);
    if (home && !inSubnet(rangeFirst(home), c))
      throw new ValidationError(`router ${input.address} is outside the subnet of range ${home.name}`, {
        field: `${at}address`,
      });
    return { family: c.family, address: formatIp(c), prefix: c.prefix };
  }
  const family = input.family ?? 'ipv4';
  const first = full.ranges.find((r) => r.family === family);
  if (!first)
    throw new ValidationError(`no ${family} range to take a router address from; give one`, {
      field: `${at}address`,
    });
  return { family, address: first.first, prefix: first.prefix };
}

export function requireRange(full: NetworkFull, name: string): RangeRow {
  const r = full.ranges.find((x) => x.name === name);
  if (!r) throw new NotFoundError(`network ${full.net.name} has no range ${name}`, { field: 'range' });
  return r;
}
