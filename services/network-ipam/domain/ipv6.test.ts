import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr } from './address.js';
import { autoPrefix, interfaceId, md5Address, newGlobalId, normalizePrefix, ulaPrefix48 } from './ipv6.js';

describe('RFC 4193 prefixes', () => {
  const gid = newGlobalId(() => Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a]));
  it('puts fd, the 40-bit global ID and the network id together', () => {
    expect(gid).toBe('123456789a');
    expect(ulaPrefix48(gid)).toBe('fd12:3456:789a::/48');
    expect(autoPrefix(gid, 1)).toBe('fd12:3456:789a:1');
    expect(autoPrefix(gid, 0xbeef)).toBe('fd12:3456:789a:beef');
    expect(() => autoPrefix(gid, 0x10000)).toThrow(/16-bit/);
  });
  it.each([
    ['fd00:0001:0002:0003', 'fd00:1:2:3'],
    ['FD00:a:b:c', 'fd00:a:b:c'],
    ['fd00::1', null],
    ['fd00:1:2', null],
    ['fd00:1:2:3:4', null],
    ['auto', null],
    ['fd00:1:2:12345', null],
  ])('prefix %s normalises to %s', (text, want) => expect(normalizePrefix(text)).toBe(want));
});

describe('md5 interface IDs', () => {
  it.each(['n1.cluster.example.com', 'd52-54-00-12-34-56.lab.crowbar.test'])(
    '%s matches `printf %%s FQDN | md5sum`',
    (fqdn) => {
      const hex = execFileSync('sh', ['-c', `printf %s "$1" | md5sum`, 'sh', fqdn], {
        encoding: 'utf8',
      }).slice(0, 32);
      expect(interfaceId(fqdn).toString(16).padStart(16, '0')).toBe(hex.slice(16, 32));
      const addr = md5Address(parseCidr('fd12:3456:789a:1::1/64')!, fqdn);
      const groups = hex
        .slice(16, 32)
        .match(/.{4}/g)!
        .map((g) => Number.parseInt(g, 16).toString(16));
      expect(formatIp(addr)).toBe(formatIp(parseCidr(`fd12:3456:789a:1:${groups.join(':')}/64`)!));
    },
  );
});
