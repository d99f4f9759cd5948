import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, publicPaths } from '../services/gateway/app.js';
import type { Bus } from '../shared/bus/bus.js';
import { systemClock } from '../shared/clock.js';
import { mintDiscoveryToken } from '../shared/discovery-token.js';
import { createLogger } from '../shared/log.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

/**
 * Every route of the gateway, enumerated from the app itself (so a new route is walked without anyone
 * listing it): an operator route refuses a missing or unknown token (401), a machine's discovery or join
 * token and a node credential (403 / 401), and the read-only token on anything that changes something
 * (403) — each before the gateway asks any service: no RPC request crosses the bus while it refuses.
 * Node-facing routes refuse operator tokens.
 */
const secret = 'test-discovery-secret-0123456789';
let t: TestEnv;
let stack: Stack;
let nc: NatsConnection;
let bus: Bus;
const seen: string[] = [];

let routes: { method: string; path: string }[] = [];
/** An app built the way the gateway builds it. */
const gatewayApp = (bus: Bus) =>
  createApp({
    bus,
    log: createLogger('walk', { level: 'silent' }),
    clock: systemClock,
    self: async () => {
      throw new Error('not called');
    },
    adminToken: testAdminToken,
    readOnlyToken: testReadOnlyToken,
  });
/** The gateway's route table, read off the app. */
function routeTable(bus: Bus) {
  const app = gatewayApp(bus);
  const uniq = new Map<string, { method: string; path: string }>();
  for (const r of app.routes)
    if (r.method !== 'ALL' && r.path.startsWith('/api/')) uniq.set(`${r.method} ${r.path}`, r);
  return [...uniq.values()];
}
const isPublic = (path: string) => publicPaths.some((p) => p.test(path));
const concrete = (path: string) => path.replace(/:[A-Za-z_]+(\{[^}]*\})?/g, '1').replace(/\*$/, 'x');
const mutating = (m: string) => !['GET', 'HEAD'].includes(m);

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'gateway'], { CROWBAR_DISCOVERY_SECRET: secret });
  bus = await connectTestBus(t);
  routes = routeTable(bus);
  nc = await connect({ servers: t.natsUrl });
  // Every RPC request on this file's bus (what the gateway asks services).
  nc.subscribe(`${t.prefix}.rpc.>`, {
    callback: (_e, m) => {
      seen.push(m.subject);
    },
  });
  await nc.flush();
});

afterAll(async () => {
  await nc?.close();
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

const call = async (method: string, path: string, token: string | null) => {
  const r = await fetch(`${stack.api.replace(/\/api\/v2$/, '')}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(mutating(method) ? { 'content-type': 'application/json' } : {}),
    },
    ...(mutating(method) ? { body: '{}' } : {}),
  });
  await r.arrayBuffer();
  return r.status;
};

describe('every gateway route and who may call it', () => {
  it('finds the routes in the app', () => {
    expect(routes.length).toBeGreaterThan(60);
    expect(routes.some((r) => r.path === '/api/v2/nodes' && r.method === 'GET')).toBe(true);
    expect(routes.some((r) => r.path === '/api/v2/node-api/register')).toBe(true);
  });

  it('matches every route with hono’s RegExpRouter (one regular expression per method, no tree walk)', async () => {
    // SmartRouter falls back to TrieRouter, a slower match on every request, when a route is one
    // RegExpRouter cannot take (a parameter beside a literal at the same depth): such a route fails here.
    const app = gatewayApp(bus);
    expect((await app.request('/api/v2/nodes')).status).toBe(401);
    expect((app.router as unknown as { activeRouter: { name: string } }).activeRouter.name).toBe(
      'RegExpRouter',
    );
  });

  it('operator routes: 401 without or with an unknown token, 403 for machine tokens and read-only writes, no bus traffic', async () => {
    const discovery = mintDiscoveryToken(secret, {
      expires: Math.floor(Date.now() / 1000) + 600,
      nodeId: null,
    });
    const join = mintDiscoveryToken(
      secret,
      { expires: Math.floor(Date.now() / 1000) + 600, nodeId: null },
      'join',
    );
    await nc.flush();
    seen.length = 0;
    const wrong: string[] = [];
    const operator = routes.filter((r) => !isPublic(r.path));
    for (const r of operator) {
      const path = concrete(r.path);
      const expectations: [string | null, number][] = [
        [null, 401],
        ['not-a-token', 401],
        ['a-node-credential-0123456789abcdef', 401],
        [discovery, 403],
        [join, 403],
        ...(mutating(r.method) ? ([[testReadOnlyToken, 403]] as [string, number][]) : []),
      ];
      for (const [token, want] of expectations) {
        const got = await call(r.method, path, token);
        if (got !== want)
          wrong.push(`${r.method} ${path} with ${token?.slice(0, 8) ?? 'no token'}: ${got}, want ${want}`);
      }
    }
    expect(wrong).toEqual([]);
    await nc.flush();
    expect(seen).toEqual([]);
    // The watch does see what an allowed call asks.
    expect(await call('GET', '/api/v2/nodes', testAdminToken)).toBe(200);
    await nc.flush();
    expect(seen.some((s) => s.includes('.rpc.inventory.'))).toBe(true);
  });

  it('node-facing routes take a node credential, never an operator token', async () => {
    const nodeRoutes = routes.filter((r) => r.path.startsWith('/api/v2/node-api/'));
    expect(nodeRoutes.length).toBeGreaterThanOrEqual(3);
    for (const r of nodeRoutes) {
      const path = concrete(r.path);
      const body = r.path.endsWith('/alive')
        ? '{"alive":true}'
        : r.path.endsWith('/bootenv')
          ? '{"bootenv":"local"}'
          : '{}';
      for (const token of [testAdminToken, testReadOnlyToken]) {
        const res = await fetch(`${stack.api.replace(/\/api\/v2$/, '')}${path}`, {
          method: r.method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
        });
        const text = await res.text();
        // The register route reads a registration body first (422 for `{}`); the node reports 401.
        expect([401, 422], `${r.method} ${path}: ${res.status} ${text}`).toContain(res.status);
        if (!r.path.endsWith('/register')) expect(res.status, `${r.method} ${path}`).toBe(401);
      }
    }
  });
});
