import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { createApp } from '../services/gateway/app.js';
import type { Bus } from '../shared/bus/bus.js';
import { systemClock } from '../shared/clock.js';
import { createLogger } from '../shared/log.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

/**
 * Property: whatever an operator's client sends to any route — odd ids and names in the path, query
 * strings, bodies that are JSON of any shape or not JSON at all, wrong content types, the admin or the
 * read-only token — the gateway and the services behind it answer with a status below 500 and a JSON
 * body with a code and a message, and no answer carries the admin token. Runs are bounded (count and
 * time); fast-check's seed is printed on failure to replay it.
 */
let t: TestEnv;
let stack: Stack;
let bus: Bus;
let routes: { method: string; path: string }[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(
    t,
    ['inventory', 'network-ipam', 'dns-db', 'dhcp-db', 'annealer', 'provisioner', 'gateway'],
    {
      CROWBAR_DNS_PORT: '0',
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_TFTP_PORT: '0',
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_DISCOVERY_SECRET: 'test-discovery-secret-0123456789',
      // The services that answer the API, so a 503 can only mean a fault; dhcp-db serves only lo. Not
      // jig-runner and aliveness-probe: they would reach out to whatever addresses the fuzzer invents.
      CROWBAR_DHCP_INTERFACES: 'lo',
    },
  );
  bus = await connectTestBus(t);
  const app = createApp({
    bus,
    log: createLogger('fuzz', { level: 'silent' }),
    clock: systemClock,
    self: async () => {
      throw new Error('not called');
    },
    adminToken: testAdminToken,
    readOnlyToken: testReadOnlyToken,
  });
  const uniq = new Map<string, { method: string; path: string }>();
  // Left out, each with tests of its own: the event stream (its answer does not end), health (503 by
  // design while a service is down) and revoking tokens (the fuzzer would revoke its own).
  const skip = (r: { method: string; path: string }) =>
    /\/(events|health)$/.test(r.path) || (r.method === 'DELETE' && r.path.startsWith('/api/v2/tokens/'));
  for (const r of app.routes)
    if (r.method !== 'ALL' && r.path.startsWith('/api/v2/') && !skip(r)) uniq.set(`${r.method} ${r.path}`, r);
  routes = [...uniq.values()];
  // Something to find: a node, a deployment and a binding.
  await stack.call('POST', '/nodes', { name: 'fuzz1.fuzz.test', alive: true });
  await stack.call('POST', '/deployments', { name: 'fuzzed' });
}, 120_000);

afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
});

const segment = fc.oneof(
  fc.constantFrom(
    '1',
    '2',
    '999999',
    '0',
    '-1',
    'fuzz1.fuzz.test',
    'system',
    'fuzzed',
    'admin',
    'x'.repeat(300),
  ),
  fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s)),
  fc.constantFrom('%00', '..', '%2e%2e', '%ff', '1e9', 'NaN', 'null', '[]'),
);
const query = fc.dictionary(
  fc.constantFrom('limit', 'after', 'node', 'mac', 'state', 'all', 'network', 'category', 'before', 'x'),
  fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String)),
  { maxKeys: 3 },
);
const body = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ name: 'fuzz2.fuzz.test', data: v, value: v })),
  fc.string({ maxLength: 200 }),
  fc.constant(''),
  fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b).toString('latin1')),
);

describe('API fuzz', () => {
  it('every route answers below 500 with a JSON error body, and never leaks the admin token', async () => {
    expect(routes.length).toBeGreaterThan(60);
    const request = fc.record({
      route: fc.constantFrom(...routes),
      segments: fc.array(segment, { minLength: 4, maxLength: 4 }),
      query,
      body,
      json: fc.boolean(),
      token: fc.constantFrom(testAdminToken, testAdminToken, testReadOnlyToken),
    });
    const base = stack.api.replace(/\/api\/v2$/, '');
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let i = 0;
        const path = r.route.path.replace(/:[A-Za-z_]+(\{[^}]*\})?/g, () => r.segments[i++ % 4]!);
        const qs = new URLSearchParams(r.query).toString();
        const send = !['GET', 'HEAD'].includes(r.route.method);
        const res = await fetch(`${base}${path}${qs ? `?${qs}` : ''}`, {
          method: r.route.method,
          headers: {
            authorization: `Bearer ${r.token}`,
            ...(send ? { 'content-type': r.json ? 'application/json' : 'text/plain' } : {}),
          },
          ...(send ? { body: r.body } : {}),
          signal: AbortSignal.timeout(30_000),
        });
        const text = await res.text();
        const what = `${r.route.method} ${path}?${qs} ${JSON.stringify(r.body).slice(0, 120)} → ${res.status} ${text.slice(0, 200)}`;
        expect(res.status, what).toBeLessThan(500);
        expect(text.includes(testAdminToken), what).toBe(false);
        if (res.status >= 400 && res.status !== 404) {
          const err = JSON.parse(text) as { code?: unknown; message?: unknown };
          expect(typeof err.code, what).toBe('string');
          expect(typeof err.message, what).toBe('string');
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false },
    );
    // The services behind it are still up and answering.
    expect((await stack.call('GET', '/nodes')).status).toBe(200);
  }, 200_000);
});
