import type { RangeInput } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import { broadcastOf, type Cidr, type Family, networkOf, parseCidr, sameSubnet } from './address.js';
import { ConduitError, identicalOrDisjoint, parseConduit } from './conduit.js';
import { normalizePrefix } from './ipv6.js';

/**
 * Validation rules for networks and ranges (reference §5.1, §5.3). Each failure is a ValidationError
 * naming the field, so the gateway answers 422 and nothing is written.
 */

export interface LinkFlags {
  vlan: number;
  useVlan: boolean;
  teamMode: number;
  useTeam: boolean;
}

const invalid = (field: string, message: string) => new ValidationError(message, { field });

/**
 * Applies the API defaults (useVlan follows vlan>0, useTeam follows teamMode>0 when omitted) on top of
 * `current`, then checks VLAN, team and conduit sanity together.
 */
export function resolveLinkFlags(
  conduit: string,
  given: {
    vlan?: number | undefined;
    useVlan?: boolean | undefined;
    teamMode?: number | undefined;
    useTeam?: boolean | undefined;
  },
  current: LinkFlags = { vlan: 0, useVlan: false, teamMode: 5, useTeam: false },
  at = '',
): LinkFlags {
  const vlan = given.vlan ?? current.vlan;
  const useVlan = given.useVlan ?? (given.vlan !== undefined ? given.vlan > 0 : current.useVlan);
  const teamMode = given.teamMode ?? current.teamMode;
  const useTeam = given.useTeam ?? (given.teamMode !== undefined ? given.teamMode > 0 : current.useTeam);
  if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4094)
    throw invalid(`${at}vlan`, `vlan ${vlan} is out of range: a VLAN tag is 1..4094`);
  // An explicit tag must be a real one unless VLANs are explicitly switched off.
  if ((useVlan || (given.vlan !== undefined && given.useVlan !== false)) && (vlan < 1 || vlan > 4094))
    throw invalid(`${at}vlan`, `vlan ${vlan} is not a usable VLAN tag (1..4094)`);
  if (!Number.isInteger(teamMode) || teamMode < 0 || teamMode > 6)
    throw invalid(`${at}teamMode`, `teamMode ${teamMode} is not a Linux bonding mode (0..6)`);
  checkConduit(conduit, useTeam, `${at}conduit`, `${at}useTeam`);
  return { vlan, useVlan, teamMode, useTeam };
}

export function checkConduit(conduit: string, useTeam: boolean, field = 'conduit', teamField = 'useTeam') {
  let c: ReturnType<typeof parseConduit>;
  try {
    c = parseConduit(conduit);
  } catch (e) {
    throw invalid(field, e instanceof ConduitError ? e.message : String(e));
  }
  if (c.kind === 'bmc') return;
  const n = c.members.length;
  if (!useTeam && n > 1)
    throw invalid(teamField, `conduit ${conduit} teams ${n} interfaces but useTeam is false`);
  if (useTeam && (n < 2 || n > 8))
    throw invalid(field, `a team needs 2..8 conduit members; conduit ${conduit} has ${n}`);
}

/** Checks a conduit against every other network's and range's conduit (identical or disjoint). */
export function checkConduitSets(
  conduit: string,
  others: readonly { conduit: string; owner: string }[],
  field = 'conduit',
) {
  for (const o of others) {
    if (!identicalOrDisjoint(conduit, o.conduit))
      throw invalid(field, `conduit ${conduit} partly overlaps conduit ${o.conduit} of ${o.owner}`);
  }
}

export type V6Setting = { kind: 'none' } | { kind: 'auto' } | { kind: 'prefix'; prefix: string };

export function parseV6Setting(raw: string | null | undefined, field = 'v6prefix'): V6Setting {
  if (raw === null || raw === undefined || raw === '') return { kind: 'none' };
  if (raw === 'auto') return { kind: 'auto' };
  const p = normalizePrefix(raw);
  if (!p)
    throw invalid(field, `v6prefix "${raw}" must be "auto" or a /64 as four hextets, e.g. fd12:3456:789a:1`);
  return { kind: 'prefix', prefix: p };
}

export interface CheckedRange {
  family: Family;
  first: Cidr;
  last: Cidr;
  allowAnonLeases: boolean;
  allowBoundLeases: boolean;
  anonLeaseTime: number;
  boundLeaseTime: number;
}

/** Checks one range on its own: addresses, family, subnet, network/broadcast, overlap flag, leases. */
export function checkRange(
  r: Pick<RangeInput, 'name' | 'first' | 'last' | 'overlap'> &
    Partial<Pick<RangeInput, 'allowAnonLeases' | 'allowBoundLeases' | 'anonLeaseTime' | 'boundLeaseTime'>>,
  network: { configure: boolean },
  at = '',
): CheckedRange {
  const first = parseCidr(r.first);
  if (!first) throw invalid(`${at}first`, `first "${r.first}" is not an address in CIDR form (a.b.c.d/len)`);
  const last = parseCidr(r.last);
  if (!last) throw invalid(`${at}last`, `last "${r.last}" is not an address in CIDR form (a.b.c.d/len)`);
  if (first.family !== last.family)
    throw invalid(`${at}last`, `first ${r.first} and last ${r.last} are of different address families`);
  if (!sameSubnet(first, last))
    throw invalid(`${at}last`, `first ${r.first} and last ${r.last} are not in the same subnet`);
  const bits = first.family === 'ipv4' ? 32 : 128;
  if (first.prefix < bits - 1) {
    for (const [name, c] of [
      ['first', first],
      ['last', last],
    ] as const) {
      if (c.value === networkOf(c))
        throw invalid(`${at}${name}`, `${name} ${formatBoth(r, name)} is the network address of its subnet`);
      if (c.value === broadcastOf(c))
        throw invalid(
          `${at}${name}`,
          `${name} ${formatBoth(r, name)} is the broadcast address of its subnet`,
        );
    }
  }
  if (first.value > last.value) throw invalid(`${at}last`, `last ${r.last} comes before first ${r.first}`);
  if (r.overlap && network.configure)
    throw invalid(`${at}overlap`, 'overlap is only allowed on networks with configure=false');
  const anon = r.name === 'dhcp';
  const anonLeaseTime = r.anonLeaseTime ?? 60;
  const boundLeaseTime = r.boundLeaseTime ?? 2_592_000;
  if (anonLeaseTime < 60) throw invalid(`${at}anonLeaseTime`, 'anonLeaseTime must be at least 60 seconds');
  if (boundLeaseTime < 3 * anonLeaseTime)
    throw invalid(`${at}boundLeaseTime`, 'boundLeaseTime must be at least 3 times anonLeaseTime');
  return {
    family: first.family,
    first,
    last,
    allowAnonLeases: r.allowAnonLeases ?? anon,
    allowBoundLeases: r.allowBoundLeases ?? !anon,
    anonLeaseTime,
    boundLeaseTime,
  };
}

const formatBoth = (r: { first: string; last: string }, which: 'first' | 'last') => r[which];

/** Two ranges conflict when they share an address and neither is marked `overlap`. */
export function checkNoOverlap(
  mine: { family: Family; first: bigint; last: bigint; overlap: boolean },
  others: readonly { family: Family; first: bigint; last: bigint; overlap: boolean; label: string }[],
  field = 'first',
) {
  if (mine.overlap) return;
  for (const o of others) {
    if (o.overlap || o.family !== mine.family) continue;
    if (mine.first <= o.last && o.first <= mine.last)
      throw invalid(
        field,
        `range overlaps ${o.label}; mark one of them overlap (configure=false networks only)`,
      );
  }
}
