import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from '../shared/bus/index.js';
import { inventoryEvents, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

let t: TestEnv;
let stack: Stack;
let bus: Bus;
const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['network-ipam', 'gateway']);
  bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'ipam-api-test', log, streams });
});
afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

const node = (id: number, name: string, admin = false) => ({
  id,
  name,
  admin,
  system: false,
  alive: true,
  available: true,
  bootenv: 'local',
  deploymentId: 1,
  deployment: 'system',
  macs: [],
  roles: [],
  sshHostKey: null,
});

async function until<T>(what: string, f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('ipam REST', () => {
  it('bootstraps the admin network with ranges, router and an automatic IPv6 prefix', async () => {
    const r = await stack.call('GET', '/networks/admin');
    expect(r.status).toBe(200);
    expect(r.body.category).toBe('admin');
    expect(r.body.ranges.map((x: any) => [x.name, x.first, x.last])).toEqual([
      ['admin', '198.18.0.10/24', '198.18.0.11/24'],
      ['dhcp', '198.18.0.21/24', '198.18.0.80/24'],
      ['host', '198.18.0.81/24', '198.18.0.254/24'],
      ['host-v6', `${r.body.v6prefix}::1/64`, `${r.body.v6prefix}:ffff:ffff:ffff:fffe/64`],
    ]);
    expect(r.body.v6prefix).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:1$/);
    expect(r.body.routers).toEqual([expect.objectContaining({ address: '198.18.0.1/24', pref: 10 })]);
  });

  it('allocates a node its host v4 and md5 v6 address', async () => {
    await bus.publish(inventoryEvents.nodeCreated, { node: node(11, 'n11.cluster.example.com') });
    const r = await until('allocation', async () => {
      const x = await stack.call('POST', '/network_allocations', {
        node: 'n11.cluster.example.com',
        network: 'admin',
      });
      return x.status === 201 ? x : null;
    });
    expect(r!.body.allocations.map((a: any) => a.range)).toEqual(['host', 'host-v6']);
    expect(r!.body.allocations[0].address).toBe('198.18.0.81/24');
  });
});
