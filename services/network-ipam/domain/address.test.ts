import { describe, expect, it } from 'vitest';
import {
  broadcastOf,
  formatCidr,
  formatIp,
  networkOf,
  parseCidr,
  parseIp,
  sameSubnet,
  subnetOf,
} from './address.js';

describe('address math', () => {
  it.each([
    ['198.18.0.1', '198.18.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['fd12:3456:789a:1::1', 'fd12:3456:789a:1::1'],
    ['FD12:3456:789A:0001:0000:0000:0000:0001', 'fd12:3456:789a:1::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
  ])('%s formats as %s', (text, want) => expect(formatIp(parseIp(text)!)).toBe(want));

  it.each([
    '198.18.0',
    '198.18.0.256',
    '01.2.3.4',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    'g::1',
    '',
    '1.2.3.4.5',
    ':1',
  ])('%s is not an address', (text) => expect(parseIp(text)).toBeNull());

  it('computes subnets, network and broadcast', () => {
    const c = parseCidr('198.18.0.81/24')!;
    expect(formatIp({ family: 'ipv4', value: networkOf(c) })).toBe('198.18.0.0');
    expect(formatIp({ family: 'ipv4', value: broadcastOf(c) })).toBe('198.18.0.255');
    expect(subnetOf(parseCidr('fd00:1:2:3::99/64')!)).toBe('fd00:1:2:3::/64');
    expect(sameSubnet(parseCidr('10.0.0.1/8')!, parseCidr('10.200.0.1/8')!)).toBe(true);
    expect(sameSubnet(parseCidr('10.0.0.1/24')!, parseCidr('10.0.1.1/24')!)).toBe(false);
    expect(parseCidr('10.0.0.1/33')).toBeNull();
    expect(parseCidr('10.0.0.1')).toBeNull();
    expect(formatCidr(parseCidr('10.0.0.1', { bareAllowed: true })!)).toBe('10.0.0.1/32');
  });
});
