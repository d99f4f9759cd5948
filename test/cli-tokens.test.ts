import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayService } from '../services/gateway/service.js';
import { type HostedService, hostService } from '../shared/service/host.js';
import { runCrowbar } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

// Named tokens and the audit log through the CLI (the real binary) and the API, with two gateways
// sharing the gateway schema: a token revoked through one is refused by the other within 1 s.
let t: TestEnv;
let s: Stack;
let second: HostedService;
let secondUrl: string;
let dir: string;
let endpoint: string;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-cli-tokens-`);
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'gateway'], { LOG_LEVEL: 'silent' });
  endpoint = s.api.replace(/\/api\/v2$/, '');
  second = await hostService(gatewayService, {
    env: {
      ...t.env,
      LOG_LEVEL: 'silent',
      CROWBAR_HTTP_HOST: '127.0.0.1',
      CROWBAR_HTTP_PORT: '0',
      CROWBAR_ADMIN_TOKEN: testAdminToken,
      CROWBAR_READONLY_TOKEN: testReadOnlyToken,
    },
  });
  secondUrl = `http://127.0.0.1:${second.detail().port}`;
}, 120_000);
afterAll(async () => {
  await second?.stop();
  await s?.stop();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const crowbar = (args: string[], key = testAdminToken) =>
  runCrowbar(args, {
    HOME: dir,
    CROWBAR_CONFIG: `${dir}/config.json`,
    CROWBAR_ENDPOINT: endpoint,
    CROWBAR_KEY: key,
  });
const json = async (args: string[], key?: string) => {
  const r = await crowbar([...args, '--format', 'json'], key);
  expect([r.code, r.stderr]).toEqual([0, '']);
  return JSON.parse(r.stdout);
};
const status = async (base: string, token: string) =>
  (await fetch(`${base}/api/v2/nodes`, { headers: { authorization: `Bearer ${token}` } })).status;

describe('named tokens', () => {
  it("the launcher's tokens are the first named ones", async () => {
    const { tokens } = await json(['tokens', 'list']);
    expect(tokens.map((x: { name: string; role: string }) => [x.name, x.role])).toEqual([
      ['launcher', 'admin'],
      ['launcher-read-only', 'read-only'],
    ]);
    const table = await crowbar(['tokens', 'list']);
    expect(table.stdout).toMatch(/launcher\s*│ admin/);
  });

  it('creates a token shown once and stored hashed; its role holds on every gateway', async () => {
    const ci = await json(['tokens', 'create', 'ci']);
    expect(ci).toMatchObject({ name: 'ci', role: 'read-only', createdBy: 'launcher', revokedAt: null });
    expect(ci.token).toMatch(/^cbt_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(await json(['tokens', 'list']))).not.toContain(ci.token);
    const db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    const stored = (await db.query('select hash from gateway.tokens where name = $1', ['ci'])).rows[0].hash;
    await db.end();
    expect(stored).toMatch(/^[0-9a-f]{64}$/);
    expect(stored).not.toContain(ci.token);

    expect((await crowbar(['nodes', 'list'], ci.token)).code).toBe(0);
    expect(await status(secondUrl, ci.token)).toBe(200);
    const refused = await crowbar(['deployments', 'create', 'nope'], ci.token);
    expect([refused.code, refused.stderr]).toEqual([
      2,
      'crowbar: not allowed: the read-only token cannot change anything.\n',
    ]);
    expect((await crowbar(['tokens', 'create', 'ci'])).stderr).toBe(
      'crowbar: a token named ci exists already (field name; rule: unique names).\n',
    );
    expect((await crowbar(['tokens', 'create', 'Bad Name'])).code).toBe(4);
  });

  it('a revoked token is refused at once by the gateway that revoked it and within 1 s by the others', async () => {
    const ops = await json(['tokens', 'create', 'ops', '--role', 'admin']);
    expect(await status(endpoint, ops.token)).toBe(200);
    expect(await status(secondUrl, ops.token)).toBe(200);
    const revoked = await json(['tokens', 'revoke', 'ops']);
    const at = Date.now();
    expect(revoked).toMatchObject({ name: 'ops', revokedAt: expect.any(String) });
    expect(await status(endpoint, ops.token)).toBe(401);
    await until(
      'the other gateway refuses the token',
      async () => (await status(secondUrl, ops.token)) === 401,
      3000,
      20,
    );
    expect(Date.now() - at).toBeLessThan(1000);
    const r = await crowbar(['nodes', 'list'], ops.token);
    expect([r.code, r.stderr]).toEqual([
      2,
      `crowbar: Crowbar at ${endpoint} refused the token (invalid operator token): set CROWBAR_KEY, pass --key or run \`crowbar login\`.\n`,
    ]);
    // Revoking again is fine; an unknown one is a 404 naming the field.
    expect((await crowbar(['tokens', 'revoke', 'ops'])).code).toBe(0);
    expect((await crowbar(['tokens', 'revoke', 'ghost'])).stderr).toBe(
      'crowbar: no token ghost (field token).\n',
    );
  });
});

describe('audit log', () => {
  it('records every mutating call: who, what, when, correlation id and result; reads are not logged', async () => {
    const dev = await json(['tokens', 'create', 'dev', '--role', 'admin']);
    await json(['deployments', 'create', 'audited'], dev.token);
    await crowbar(['deployments', 'create', 'Bad Name'], dev.token);
    await json(['deployments', 'list'], dev.token);
    const r = await fetch(`${secondUrl}/api/v2/deployments/audited/commit`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${dev.token}`, 'x-correlation-id': 'corr-1234' },
    });
    expect([r.status, r.headers.get('x-correlation-id')]).toEqual([200, 'corr-1234']);
    await fetch(`${endpoint}/api/v2/deployments`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong-token-0123456789' },
    });

    const { entries } = await json(['audit', '--token', 'dev']);
    expect(entries.map((e: any) => [e.method, e.path, e.status, e.result, e.role])).toEqual([
      ['PUT', '/api/v2/deployments/audited/commit', 200, 'ok', 'admin'],
      ['POST', '/api/v2/deployments', 422, 'invalid', 'admin'],
      ['POST', '/api/v2/deployments', 201, 'ok', 'admin'],
    ]);
    expect(entries[0].correlationId).toBe('corr-1234');
    expect(entries[1].correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.now() - Date.parse(entries[0].at)).toBeLessThan(60_000);
    const all = (await json(['audit', '--limit', '100'])).entries;
    expect(all.find((e: any) => e.token === null && e.status === 401)).toMatchObject({
      method: 'POST',
      path: '/api/v2/deployments',
      result: 'unauthorized',
    });
    // Earlier tests' calls are there too: the token creations and the refused read-only call.
    expect(
      all.filter((e: any) => e.path === '/api/v2/tokens' && e.status === 201).length,
    ).toBeGreaterThanOrEqual(3);
    expect(all.find((e: any) => e.token === 'ci')).toMatchObject({ status: 403, result: 'forbidden' });
    expect(all.some((e: any) => e.method === 'GET')).toBe(false);
    // Paged: newest first, `next` is the cursor.
    const page = await json(['audit', '--limit', '2']);
    expect(page.entries).toHaveLength(2);
    const next = await json(['audit', '--limit', '2', '--before', String(page.next)]);
    expect(next.entries[0].id).toBeLessThan(page.entries[1].id);
  });
});
