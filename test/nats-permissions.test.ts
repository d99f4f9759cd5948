import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../infra/nats.js';
import { type NatsUser, natsAuthorization, natsCredentials, natsUrlFor } from '../infra/nats-auth.js';
import { pickPort } from '../infra/ports.js';
import { allServices } from '../infra/services.js';
import { coreBarclampDir } from '../services/inventory/service.js';
import { inboxPrefixFor } from '../shared/bus/access.js';
import { streamName } from '../shared/bus/streams.js';
import { mintDiscoveryToken } from '../shared/discovery-token.js';
import { until } from './helpers/dhcp-clients.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { openSse } from './helpers/sse.js';
import { newKeyPair } from './helpers/sshd.js';
import { type Stack, startStack, testAdminToken } from './helpers/stack.js';

/**
 * Least privilege on the bus (issue 18): every service on a nats-server of this file's own that gives each
 * service the user `npm start` gives it (permissions from shared/catalogue/access.ts). The whole control
 * plane brings the admin node up and registers a machine with no permission refused; then a service's
 * credentials are refused what its grants leave out, and the read-only tools user never sees a node
 * credential.
 */
const secret = 'test-discovery-secret-0123456789';
let t: TestEnv;
let s: Stack;
let dir: string;
let nats: NatsServerHandle;
let creds: ReturnType<typeof natsCredentials>;
let tools: NatsConnection;
const toolsSaw: string[] = [];
const open: NatsConnection[] = [];

const urlOf = (user: NatsUser) => natsUrlFor(nats.url, user, creds);
/** A raw client with a user's credentials and the inbox prefix the bus gives that user. */
async function client(user: NatsUser, inboxPrefix = user === 'tools' ? '_INBOX' : inboxPrefixFor(user)) {
  const nc = await connect({ servers: nats.url, user, pass: creds[user], inboxPrefix, timeout: 5000 });
  open.push(nc);
  return nc;
}
const serverLog = () => readFileSync(`${dir}/nats/nats-server.log`, 'utf8');
/** What nats-server logged as refused: `Publish Violation - User "x", Subject "y"` and the like. */
const violations = () => serverLog().match(/(Publish|Subscription) Violation[^\n]*/g) ?? [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-perm-'));
  t = await createTestEnv();
  creds = natsCredentials(join(dir, 'credentials.json'));
  nats = await startNatsServer({
    dir: join(dir, 'nats'),
    port: await pickPort(4620),
    log: () => undefined,
    authorization: natsAuthorization(creds, t.prefix),
  });
  tools = await client('tools');
  const sub = tools.subscribe(`${t.prefix}.evt.>`, {
    callback: (_e, m: Msg) => {
      toolsSaw.push(`${m.subject} ${m.string()}`);
    },
  });
  void sub;
  s = await startStack(
    t,
    allServices.map((d) => d.name),
    {
      CROWBAR_ADMIN_NODE: 'admin.crowbar.internal',
      CROWBAR_BARCLAMPS: coreBarclampDir,
      CROWBAR_ADMIN_CIDR: '198.18.130.0/24',
      CROWBAR_ANNEAL_PASS_MS: '200',
      CROWBAR_DISCOVERY_SECRET: secret,
      CROWBAR_DHCP_PORT: String(await pickPort(0)),
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_DNS_PORT: '0',
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_TFTP_PORT: '0',
      CROWBAR_BOOT_ROOT: join(dir, 'boot'),
      CROWBAR_PROBE_INTERVAL_MS: '300',
    },
    (name) => ({ NATS_URL: urlOf(name) }),
  );
}, 120_000);

afterAll(async () => {
  await s?.stop();
  for (const nc of open) await nc.close().catch(() => undefined);
  await nats?.stop();
  // The streams lived on this file's own server; only the database is left to drop.
  await t?.cleanup().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('NATS least privilege', () => {
  it('runs the whole control plane with a user per service and nothing refused', {
    timeout: 150_000,
  }, async () => {
    await until(
      'admin node converged',
      async () => {
        const r = await s.call('GET', '/nodes/admin/node_roles');
        const nrs = (r.body.noderoles ?? []) as { state: string; role: string }[];
        return nrs.some((n) => n.role === 'crowbar-admin-node') && nrs.every((n) => n.state === 'active');
      },
      120_000,
    );
    // A machine registers: inventory makes its credential, the gateway hands it over.
    const mac = '52:54:00:bd:00:01';
    const hostKey = newKeyPair(dir);
    const token = mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + 600, nodeId: null });
    const r = await fetch(`${s.api}/node-api/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ macs: [mac], bootMac: mac, hostKey, facts: { cpus: 1 } }),
    });
    const reg = (await r.json()) as { credential?: string; node?: { name: string } };
    expect(r.status, JSON.stringify(reg)).toBe(201);
    expect(reg.credential).toMatch(/.{16,}/);
    const name = `d${mac.replaceAll(':', '-')}.crowbar.internal`;
    // The tools user follows the event stream: it sees the node appear, never its credential.
    await until('tools saw the node', async () => toolsSaw.some((l) => l.includes(name)), 30_000);
    expect(toolsSaw.filter((l) => l.includes(reg.credential!))).toEqual([]);
    // The gateway's event stream reads EVENTS with its own user.
    const sse = await openSse(`${s.api}/events?since=0`, { authorization: `Bearer ${testAdminToken}` });
    try {
      expect(sse.status).toBe(200);
      expect((await sse.waitFor(3, 10_000)).length).toBeGreaterThanOrEqual(3);
    } finally {
      sse.close();
    }
    expect(violations()).toEqual([]);
  });

  it("refuses jig-runner's credentials inventory's API, deleting a stream and another service's replies", async () => {
    const nc = await client('jig-runner');
    const before = (await s.call('GET', '/nodes')).body.nodes.length as number;
    await expect(
      nc.request(`${t.prefix}.rpc.inventory.node.set_alive.v1`, '{}', { timeout: 2000 }),
    ).rejects.toThrow(/Permissions Violation for Publish/);
    const jsm = await jetstreamManager(nc);
    const events = streamName(t.prefix, 'EVENTS');
    await expect(jsm.streams.delete(events)).rejects.toThrow(/Permissions Violation for Publish/);
    const replies = nc.subscribe(`${inboxPrefixFor('gateway')}.>`);
    expect(String(await replies.closed)).toMatch(/Permissions Violation for Subscription/);
    await until(
      'the refusals in the server log',
      async () =>
        violations().some((v) => /^Publish.*"jig-runner".*rpc\.inventory\.node\.set_alive/.test(v)) &&
        violations().some((v) => v.includes(`STREAM.DELETE.${events}`)) &&
        violations().some((v) => /^Subscription.*"jig-runner".*_INBOX_gateway/.test(v)),
      10_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; the server logged: ${violations().join(' | ') || serverLog().slice(-2000)}`,
      );
    });
    const admin = await client('admin', '_INBOX');
    expect((await (await jetstreamManager(admin)).streams.info(events)).config.name).toBe(events);
    expect((await s.call('GET', '/nodes')).body.nodes.length).toBe(before);
  });

  it('refuses the tools user RPCs and replies, and a client without credentials', async () => {
    const nc = await client('tools');
    const rpcs = nc.subscribe(`${t.prefix}.rpc.>`);
    expect(String(await rpcs.closed)).toMatch(/Permissions Violation for Subscription/);
    const replies = nc.subscribe(`${inboxPrefixFor('inventory')}.>`);
    expect(String(await replies.closed)).toMatch(/Permissions Violation for Subscription/);
    await expect(
      nc.request(`${t.prefix}.rpc.inventory.node.list.v1`, '{}', { timeout: 2000 }),
    ).rejects.toThrow(/Permissions Violation for Publish/);
    await expect(connect({ servers: nats.url, timeout: 3000, reconnect: false })).rejects.toThrow(/auth/i);
  });
});
