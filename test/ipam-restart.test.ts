import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { networkIpamService } from '../services/network-ipam/service.js';
import { Bus } from '../shared/bus/index.js';
import { ipamRpcs, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { type HostedService, hostService } from '../shared/service/host.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';

/** Bootstrap races between instances, and the installation's IPv6 identity across restarts. */
let t: TestEnv;
let bus: Bus;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });
const running: HostedService[] = [];
const start = (n: number) =>
  hostService(networkIpamService, { env: { ...t.env, CROWBAR_INSTANCE: `network-ipam-test-${n}` } });

beforeAll(async () => {
  t = await createTestEnv();
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'ipam-restart-test', log, streams });
});
afterAll(async () => {
  for (const h of running) await h.stop();
  await bus?.close();
  await t?.cleanup();
});

describe('bootstrap and IPv6 identity', () => {
  let first: { admin: string; ula: string; storage: string };

  it('three instances starting at once create one admin and one unmanaged network', async () => {
    running.push(...(await Promise.all([start(1), start(2), start(3)])));
    const { networks } = await bus.request(ipamRpcs.networkList, {});
    expect(networks.map((n) => [n.name, n.category])).toEqual([
      ['admin', 'admin'],
      ['unmanaged', 'unmanaged'],
    ]);
    const ula = await bus.request(ipamRpcs.ulaPrefix, {});
    expect(ula.prefix).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/);
    const storage = await bus.request(ipamRpcs.networkCreate, {
      name: 'storage',
      conduit: '10g0',
      v6prefix: 'auto',
      ranges: [{ name: 'host', first: '198.19.1.10/24', last: '198.19.1.250/24' }],
    });
    first = { admin: networks[0]!.v6prefix!, ula: ula.prefix, storage: storage.v6prefix! };
    // Same /48 for every network; the subnet ID is the network id.
    const slash48 = ula.prefix.replace('::/48', '');
    expect(first.admin).toBe(`${slash48}:${networks[0]!.id.toString(16)}`);
    expect(first.storage).toBe(`${slash48}:${storage.id.toString(16)}`);
    expect(first.storage).not.toBe(first.admin);
  });

  it('keeps the prefixes after every instance restarts', async () => {
    for (const h of running.splice(0)) await h.stop();
    running.push(await start(4));
    const ula = await bus.request(ipamRpcs.ulaPrefix, {});
    expect(ula.prefix).toBe(first.ula);
    expect((await bus.request(ipamRpcs.networkGet, { network: 'admin' })).v6prefix).toBe(first.admin);
    expect((await bus.request(ipamRpcs.networkGet, { network: 'storage' })).v6prefix).toBe(first.storage);
    const later = await bus.request(ipamRpcs.networkCreate, {
      name: 'backup',
      conduit: '10g1',
      v6prefix: 'auto',
    });
    expect(later.v6prefix!.startsWith(first.ula.replace('::/48', ':'))).toBe(true);
    const { networks } = await bus.request(ipamRpcs.networkList, { category: 'admin' });
    expect(networks).toHaveLength(1);
  });

  it('refuses bad configuration naming the variable', async () => {
    await expect(
      hostService(networkIpamService, { env: { ...t.env, CROWBAR_ADMIN_CIDR: '198.18.0.0/28' } }),
    ).rejects.toThrow(/CROWBAR_ADMIN_CIDR must have a prefix length/);
    await expect(
      hostService(networkIpamService, { env: { ...t.env, CROWBAR_BOOTSTRAP_ADMIN_NETWORK: 'maybe' } }),
    ).rejects.toThrow(/CROWBAR_BOOTSTRAP_ADMIN_NETWORK/);
  });
});
