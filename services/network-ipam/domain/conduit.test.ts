import { describe, expect, it } from 'vitest';
import {
  candidateSpeeds,
  identicalOrDisjoint,
  type Nic,
  orderNics,
  parseConduit,
  resolveConduit,
} from './conduit.js';

const plain = { vlan: 0, useVlan: false, useTeam: false, teamMode: 5, useBridge: false };
const team = { ...plain, useTeam: true };

// A server with two on-board 1g ports, a dual 10g card and a 100m management port.
const mixed: Nic[] = [
  { name: 'eth3', bus: '0000:04:00.1', speeds: ['1g', '10g'] },
  { name: 'eth0', bus: '0000:01:00.0', speeds: ['10m', '100m', '1g'] },
  { name: 'eth1', bus: '0000:01:00.1', speeds: ['10m', '100m', '1g'] },
  { name: 'eth2', bus: '0000:04:00.0', speeds: ['1g', '10g'] },
  { name: 'eth4', bus: '0000:06:00.0', speeds: ['10m', '100m'] },
];
const onlyTenGig: Nic[] = [
  { name: 'p1p1', bus: '0000:03:00.0', speeds: ['10g'] },
  { name: 'p1p2', bus: '0000:03:00.1', speeds: ['10g'] },
];
const onlySlow: Nic[] = [{ name: 'eth0', bus: '0000:01:00.0', speeds: ['100m'] }];

describe('conduit parsing', () => {
  it.each([
    ['1g0', 1, ''],
    ['+10g1', 1, '+'],
    ['?1g0,?1g1', 2, '?'],
    ['-1g0', 1, '-'],
    [' 100m2 ', 1, ''],
  ])('%s parses', (text, members, sign) => {
    const c = parseConduit(text);
    expect(c.kind).toBe('nics');
    if (c.kind === 'nics') {
      expect(c.members).toHaveLength(members);
      expect(c.members[0]!.sign).toBe(sign);
    }
  });

  it('knows bmc', () => expect(parseConduit('bmc')).toEqual({ kind: 'bmc' }));

  it.each([
    ['1g0,10g1', /mixes speeds/],
    ['+1g0,1g1', /mixes selector signs/],
    ['1g0,1g0', /twice/],
    ['eth0', /not \[\+-\?\]/],
    ['1x0', /not/],
    ['', /empty/],
    ['1g', /not/],
  ])('%s is rejected', (text, msg) => expect(() => parseConduit(text)).toThrow(msg));

  it.each([
    ['1g0', '1g0', true],
    ['1g0,1g1', '1g1,1g0', true],
    ['1g0', '1g1', true],
    ['1g0,1g1', '1g1', false],
    ['1g0', '?1g0', true],
    ['bmc', 'bmc', true],
  ])('%s vs %s identical-or-disjoint: %s', (a, b, ok) => expect(identicalOrDisjoint(a, b)).toBe(ok));
});

describe('candidate speed order', () => {
  it.each([
    ['', '1g', ['1g']],
    ['+', '1g', ['1g', '10g', '20g', '25g', '40g', '50g', '100g']],
    ['-', '1g', ['1g', '100m', '10m']],
    ['?', '1g', ['1g', '10g', '20g', '25g', '40g', '50g', '100g', '100m', '10m']],
  ] as const)('sign "%s" from %s', (sign, speed, want) =>
    expect(candidateSpeeds({ sign, speed }, [])).toEqual(want),
  );
});

describe('conduit resolution against NIC sets', () => {
  it.each([
    // [conduit, nics, want nics, want speed]
    ['1g0', mixed, ['eth0'], '1g'],
    ['1g1', mixed, ['eth1'], '1g'],
    ['10g0', mixed, ['eth2'], '10g'],
    ['10g1', mixed, ['eth3'], '10g'],
    ['100m0', mixed, ['eth4'], '100m'],
    ['+1g0', onlyTenGig, ['p1p1'], '10g'],
    ['+1g1', onlyTenGig, ['p1p2'], '10g'],
    ['?1g0', onlySlow, ['eth0'], '100m'],
    ['-1g0', onlySlow, ['eth0'], '100m'],
    ['?1g0', onlyTenGig, ['p1p1'], '10g'],
    ['+1g2', mixed, null, null],
    ['-10g0', onlySlow, ['eth0'], '100m'],
  ] as const)('%s → %j', (conduit, nics, names, speed) => {
    if (names === null) {
      expect(() => resolveConduit(conduit, nics, plain)).toThrow(/matches none/);
      return;
    }
    const r = resolveConduit(conduit, nics, plain)!;
    expect(r.nics).toEqual(names);
    expect(r.speed).toBe(speed);
    expect(r.bond).toBeNull();
    expect(r.interface).toBe(names[0]);
  });

  it.each<[string, Nic[]]>([
    ['1g0', onlyTenGig],
    ['-10g0', [{ name: 'x', bus: '1', speeds: ['40g'] }]],
    ['+10g0', onlySlow],
  ])('%s does not fall back the wrong way', (conduit, nics) =>
    expect(() => resolveConduit(conduit, nics, plain)).toThrow(/matches none/),
  );

  it('bonds several members, all from the same speed', () => {
    const r = resolveConduit('10g0,10g1', mixed, { ...team, teamMode: 4 })!;
    expect(r.bond).toEqual({ name: 'bond0', mode: 4, slaves: ['eth2', 'eth3'] });
    expect(r.interface).toBe('bond0');
  });

  it('a bond with one member missing at a speed moves to the next speed as a whole', () => {
    const nics: Nic[] = [
      { name: 'a', bus: '1', speeds: ['1g'] },
      { name: 'b', bus: '2', speeds: ['10g'] },
      { name: 'c', bus: '3', speeds: ['10g'] },
    ];
    expect(resolveConduit('+1g0,+1g1', nics, team)!.nics).toEqual(['b', 'c']);
  });

  it('names VLAN and bridge interfaces on top', () => {
    expect(resolveConduit('1g0', mixed, { ...plain, useVlan: true, vlan: 200 })!.interface).toBe('eth0.200');
    const br = resolveConduit('1g0', mixed, { ...plain, useVlan: true, vlan: 200, useBridge: true })!;
    expect([br.vlanInterface, br.bridge, br.interface]).toEqual(['eth0.200', 'br200', 'br200']);
    expect(resolveConduit('1g0', mixed, { ...plain, useBridge: true })!.interface).toBe('br-eth0');
    const bonded = resolveConduit('1g0,1g1', mixed, { ...team, useVlan: true, vlan: 7 })!;
    expect(bonded.interface).toBe('bond0.7');
  });

  it('orders by bus address, with the interface map buckets first', () => {
    expect(orderNics(mixed).map((n) => n.name)).toEqual(['eth0', 'eth1', 'eth2', 'eth3', 'eth4']);
    expect(orderNics(mixed, ['0000:04']).map((n) => n.name)).toEqual([
      'eth2',
      'eth3',
      'eth0',
      'eth1',
      'eth4',
    ]);
    // The interface map puts eth1 first, so it becomes the first 1g interface.
    expect(resolveConduit('1g0', mixed, plain, ['0000:01:00.1'])!.nics).toEqual(['eth1']);
  });

  it('leaves bmc conduits unresolved', () => expect(resolveConduit('bmc', mixed, plain)).toBeNull());
});
