import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayService } from '../services/gateway/service.js';
import { mintDiscoveryToken } from '../shared/discovery-token.js';
import { type HostedService, hostService } from '../shared/service/host.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

// Re-pinning a node's SSH host key (reference T12): only an admin token (PUT /nodes/:id) or the node's
// own discovery token or credential (registration) may do it; every other kind of credential is
// refused with the key unchanged, and each re-pin leaves a trace — an audit row naming the token, or
// the gateway's log line naming the node.
const secret = 'test-discovery-secret-0123456789';
let t: TestEnv;
let s: Stack;
let gateway: HostedService;
let api: string;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'network-ipam']);
  // The gateway with its log lines kept, to read what it said.
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n'))
        if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  gateway = await hostService(gatewayService, {
    env: {
      ...t.env,
      CROWBAR_HTTP_HOST: '127.0.0.1',
      CROWBAR_HTTP_PORT: '0',
      CROWBAR_ADMIN_TOKEN: testAdminToken,
      CROWBAR_READONLY_TOKEN: testReadOnlyToken,
      CROWBAR_DISCOVERY_SECRET: secret,
      LOG_LEVEL: 'info',
    },
    log: { destination: sink },
  });
  api = `http://127.0.0.1:${gateway.detail().port}/api/v2`;
}, 60_000);
afterAll(async () => {
  await gateway?.stop('test done');
  await s?.stop();
  await t?.cleanup();
});

const hostKey = () => generateKeyPair('crowbar-test').publicKey;
const discovery = (nodeId: number | null) =>
  mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + 600, nodeId });

async function call(method: string, path: string, bearer: string, body?: unknown) {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as any };
}
const register = (mac: string, key: string, bearer: string, node?: number) =>
  call('POST', '/node-api/register', bearer, {
    macs: [mac],
    bootMac: mac,
    hostKey: key,
    facts: {},
    ...(node === undefined ? {} : { node }),
  });
const pinned = async (id: number) =>
  (await call('GET', `/nodes/${id}`, testAdminToken)).body.sshHostKey as string;
const logged = (msg: string, node: number) => lines.filter((l) => l.msg === msg && l.node === node);

describe('re-pinning a host key', () => {
  it('only the node itself or an admin may, and every re-pin is on record', async () => {
    await until(
      'network-admin defined',
      async () => (await call('GET', '/roles/network-admin', testAdminToken)).status === 200,
      30_000,
    );
    const macA = '52:54:00:ee:00:01';
    const macB = '52:54:00:ee:00:02';
    const first = hostKey();
    const a = await until('a registered', async () => {
      const r = await register(macA, first, discovery(null));
      return r.status === 201 ? r.body : null;
    });
    const b = await until('b registered', async () => {
      const r = await register(macB, hostKey(), discovery(null));
      return r.status === 201 ? r.body : null;
    });
    const id = a.node.id as number;
    expect(await pinned(id)).toBe(first);

    // Refused, the key unchanged: an anonymous discovery token, another node's token, another
    // node's credential, the read-only token, the node's credential on the operator route.
    const other = hostKey();
    const anonymous = await register(macA, other, discovery(null));
    expect(anonymous.status).toBe(409);
    expect(anonymous.body.rule).toBe('host key pinning');
    expect((await register(macA, other, discovery(b.node.id))).status).toBe(409);
    expect((await register(macA, other, b.credential, id)).status).toBe(401);
    const readOnly = await call('PUT', `/nodes/${id}`, testReadOnlyToken, { sshHostKey: other });
    expect(readOnly.status).toBe(403);
    expect((await call('PUT', `/nodes/${id}`, a.credential, { sshHostKey: other })).status).toBe(401);
    expect(await pinned(id)).toBe(first);
    expect(
      logged(
        'registration refused: a known MAC presented another host key without the node’s credential',
        id,
      ),
    ).toHaveLength(2);

    // The node's own credential re-pins, and the gateway says so naming the node.
    const own = hostKey();
    const again = await register(macA, own, a.credential, id);
    expect(again.status).toBe(200);
    expect(await pinned(id)).toBe(own);
    expect(logged('host key re-pinned at registration', id)).toHaveLength(1);

    // An admin re-pins through the operator API; the audit log has who did it (and who was refused).
    const byAdmin = hostKey();
    expect((await call('PUT', `/nodes/${id}`, testAdminToken, { sshHostKey: byAdmin })).status).toBe(200);
    expect(await pinned(id)).toBe(byAdmin);
    const audit = (await call('GET', '/audit?limit=100', testAdminToken)).body.entries as Record<
      string,
      unknown
    >[];
    const onNode = audit
      .filter((e) => e.method === 'PUT' && e.path === `/api/v2/nodes/${id}`)
      .map((e) => [e.token, e.role, e.status]);
    expect(onNode).toEqual(
      expect.arrayContaining([
        ['launcher', 'admin', 200],
        ['launcher-read-only', 'read-only', 403],
        [null, null, 401],
      ]),
    );
  }, 90_000);
});
