import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { inventoryRpcs } from '../shared/catalogue/index.js';
import { mintDiscoveryToken } from '../shared/discovery-token.js';
import { until } from './helpers/dhcp-clients.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { newKeyPair } from './helpers/sshd.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * A registration that cannot finish (here network-ipam has not defined network-admin yet; in a boot
 * storm, a busy inventory) answers 503 instead of leaving a node without its address role, and the
 * machine's retry creates it: the node and its roles are made in one transaction. A node that exists
 * without them (made by an older version, or through the API) gets what it lacks when it registers.
 */
const secret = 'test-discovery-secret-0123456789';
let t: TestEnv;
let stack: Stack;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-reg-'));
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'gateway'], {
    CROWBAR_DISCOVERY_SECRET: secret,
    CROWBAR_ADMIN_CIDR: '198.18.121.0/24',
  });
});

afterAll(async () => {
  await stack?.stop();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('registration retried after a partial failure', () => {
  it('answers 503 while network-admin cannot be bound, stores nothing, and the retry creates the node with its roles', async () => {
    const hostKey = newKeyPair(dir);
    const mac = '52:54:00:bc:00:01';
    const register = () =>
      fetch(`${stack.api}/node-api/register`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + 600, nodeId: null })}`,
        },
        body: JSON.stringify({ macs: [mac], bootMac: mac, hostKey, facts: { cpus: 1 } }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const first = await register();
    expect(first.status).toBe(503);
    expect(first.body.message).toMatch(/network-admin/);
    const name = `d${mac.replaceAll(':', '-')}.crowbar.internal`;
    // The node and its roles are one transaction: no node an operator could commit without them.
    expect((await stack.call('GET', `/nodes/${name}`)).status).toBe(404);
    await stack.startService('network-ipam');
    await until(
      'network-admin defined',
      async () => (await stack.call('GET', '/roles/network-admin')).status === 200,
      30_000,
    );
    const again = await register();
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    const roles = (await stack.call('GET', `/nodes/${name}/node_roles`)).body.noderoles.map(
      (r: { role: string }) => r.role,
    );
    expect(roles.filter((r: string) => r === 'network-admin')).toHaveLength(1);
    expect(roles.filter((r: string) => r === 'crowbar-managed-node')).toHaveLength(1);
  }, 60_000);

  it('a known node without its boot roles gets them when it registers', async () => {
    const mac = '52:54:00:bc:00:02';
    const name = `d${mac.replaceAll(':', '-')}.crowbar.internal`;
    expect((await stack.call('POST', '/nodes', { name, mac })).status).toBe(201);
    const hostKey = newKeyPair(dir);
    const r = await fetch(`${stack.api}/node-api/register`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + 600, nodeId: null })}`,
      },
      body: JSON.stringify({ macs: [mac], bootMac: mac, hostKey, facts: { cpus: 1 } }),
    });
    expect(r.status, await r.clone().text()).toBe(200);
    const roles = (await stack.call('GET', `/nodes/${name}/node_roles`)).body.noderoles.map(
      (x: { role: string }) => x.role,
    );
    expect(roles).toEqual(expect.arrayContaining(['network-admin', 'crowbar-managed-node']));
  }, 60_000);

  it("finds a machine's node by its MACs (any case) or its id, not by listing every node", async () => {
    const bus = await connectTestBus(t);
    try {
      const made: number[] = [];
      for (const [i, mac] of ['52:54:00:bc:01:01', '52:54:00:BC:01:02', '52:54:00:bc:01:03'].entries()) {
        const r = await stack.call('POST', '/nodes', { name: `find${i}.crowbar.test`, mac });
        expect(r.status).toBe(201);
        made.push(r.body.id);
      }
      const names = async (req: z.input<typeof inventoryRpcs.listNodes.request>) =>
        (await bus.request(inventoryRpcs.listNodes, req)).nodes.map((n) => n.name);
      expect(await names({ macs: ['52:54:00:BC:01:01'] })).toEqual(['find0.crowbar.test']);
      expect(await names({ macs: ['52:54:00:bc:01:02', '52:54:00:bc:01:03'] })).toEqual([
        'find1.crowbar.test',
        'find2.crowbar.test',
      ]);
      expect(await names({ node: made[2]!, macs: ['02:00:00:00:00:99'] })).toEqual(['find2.crowbar.test']);
      expect(await names({ macs: ['02:00:00:00:00:99'] })).toEqual([]);
      const all = await names({});
      expect(all).toEqual(
        expect.arrayContaining(['find0.crowbar.test', 'find1.crowbar.test', 'find2.crowbar.test']),
      );
      expect(all.length).toBeGreaterThan(3);
    } finally {
      await bus.close();
    }
  });
});
