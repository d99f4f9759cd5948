import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostAddressesIn } from './admin-node.js';

// The admin node's addresses are this machine's own on each network (issue 11): which of the host's
// interface addresses lie inside a network's subnet.
const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
  ({ address, family, internal, netmask: '', mac: '', cidr: null }) as NetworkInterfaceInfo;
const host = {
  lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
  eth0: [nic('198.18.118.1', 'IPv4'), nic('fd00:1:2:1::1', 'IPv6')],
  eth1: [nic('198.18.119.7', 'IPv4')],
};

describe('hostAddressesIn', () => {
  it.each([
    ['198.18.118.0/24', ['198.18.118.1']],
    ['198.18.119.0/24', ['198.18.119.7']],
    ['198.18.0.0/15', ['198.18.118.1', '198.18.119.7']],
    ['fd00:1:2:1::/64', ['fd00:1:2:1::1']],
    ['198.18.120.0/24', []],
    ['127.0.0.0/8', []],
    ['not-a-cidr', []],
  ])('%s → %j', (cidr, want) => {
    expect(hostAddressesIn(cidr, host)).toEqual(want);
  });
});
