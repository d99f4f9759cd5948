import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import { checkNoOverlap, checkRange, parseV6Setting, resolveLinkFlags } from './rules.js';

const field = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof ValidationError) return e.field;
    throw e;
  }
  return 'no error';
};
const range = (first: string, last: string, overlap = false) => ({ name: 'host', first, last, overlap });

describe('range rules', () => {
  it.each([
    [range('198.18.0.10/24', '198.18.0.20/24'), 'no error'],
    [range('198.18.0.10/24', '198.18.1.20/24'), 'last'],
    [range('198.18.0.10/24', '198.18.0.20/25'), 'last'],
    [range('198.18.0.10/24', 'fd00::20/64'), 'last'],
    [range('198.18.0.0/24', '198.18.0.20/24'), 'first'],
    [range('198.18.0.10/24', '198.18.0.255/24'), 'last'],
    [range('198.18.0.20/24', '198.18.0.10/24'), 'last'],
    [range('198.18.0.10', '198.18.0.20/24'), 'first'],
    [range('198.18.0.10/24', 'nonsense'), 'last'],
    [range('fd00::1/64', 'fd00::ffff:ffff:ffff:fffe/64'), 'no error'],
    [range('fd00::/64', 'fd00::5/64'), 'first'],
    [range('198.18.0.10/24', '198.18.0.20/24', true), 'overlap'],
  ])('%j → %s', (r, want) => expect(field(() => checkRange(r, { configure: true }))).toBe(want));

  it('allows overlap on configure=false networks', () =>
    expect(field(() => checkRange(range('0.0.0.1/0', '223.255.255.254/0', true), { configure: false }))).toBe(
      'no error',
    ));

  it('rejects overlapping ranges unless one is marked overlap', () => {
    const other = { family: 'ipv4' as const, first: 100n, last: 200n, overlap: false, label: 'range dhcp' };
    expect(
      field(() => checkNoOverlap({ family: 'ipv4', first: 150n, last: 250n, overlap: false }, [other])),
    ).toBe('first');
    expect(
      field(() => checkNoOverlap({ family: 'ipv4', first: 201n, last: 250n, overlap: false }, [other])),
    ).toBe('no error');
    expect(
      field(() =>
        checkNoOverlap({ family: 'ipv4', first: 150n, last: 250n, overlap: false }, [
          { ...other, overlap: true },
        ]),
      ),
    ).toBe('no error');
  });
});

describe('link rules', () => {
  it.each([
    ['1g0', {}, 'no error'],
    ['1g0', { vlan: 100 }, 'no error'],
    ['1g0', { vlan: 0 }, 'vlan'],
    ['1g0', { vlan: 4095 }, 'vlan'],
    ['1g0', { vlan: 0, useVlan: false }, 'no error'],
    ['1g0', { useVlan: true }, 'vlan'],
    ['1g0,1g1', {}, 'useTeam'],
    ['1g0,1g1', { useTeam: true }, 'no error'],
    ['1g0,1g1', { teamMode: 4 }, 'no error'],
    ['1g0', { useTeam: true }, 'conduit'],
    ['1g0,10g1', { useTeam: true }, 'conduit'],
    ['1g0', { teamMode: 7 }, 'teamMode'],
    ['bmc', {}, 'no error'],
  ])('%s %j → %s', (conduit, given, want) =>
    expect(field(() => resolveLinkFlags(conduit, given))).toBe(want),
  );

  it('defaults useVlan and useTeam from vlan and teamMode', () => {
    expect(resolveLinkFlags('1g0', { vlan: 12 })).toEqual({
      vlan: 12,
      useVlan: true,
      teamMode: 5,
      useTeam: false,
    });
    expect(resolveLinkFlags('1g0,1g1', { teamMode: 1 }).useTeam).toBe(true);
  });

  it.each([
    ['auto', 'auto'],
    [null, 'none'],
    ['fd00:1:2:3', 'prefix'],
    ['fd00::/64', 'v6prefix'],
    ['xyz', 'v6prefix'],
  ])('v6prefix %s → %s', (raw, want) => {
    let got: string;
    try {
      got = parseV6Setting(raw).kind;
    } catch (e) {
      got = (e as ValidationError).field!;
    }
    expect(got).toBe(want);
  });
});
