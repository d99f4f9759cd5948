import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceName } from '../shared/catalogue/index.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { runNode } from './helpers/process.js';
import { type Stack, startStack } from './helpers/stack.js';

// README "Backup and restore", once end to end with the real script (npm run backup / restore's entry):
// a stack with nodes, noderoles and admin addresses; a backup; the database dropped and the streams
// deleted; a restore; the stack again, with the same nodes, noderoles and addresses, annealing a new node.
const root = fileURLToPath(new URL('../', import.meta.url));
const services: ServiceName[] = ['inventory', 'network-ipam', 'annealer', 'jig-runner', 'gateway'];
const fast = { CROWBAR_ANNEAL_PASS_MS: '100' };
let t: TestEnv;
let s: Stack | undefined;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-backup-test-`);
  t = await createTestEnv();
}, 60_000);
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** `npm run backup|restore -- …` as npm runs it (the bootstrap entry), in a child process. */
const script = (verb: 'backup' | 'restore', args: string[], env: Record<string, string | undefined> = {}) =>
  runNode(
    [`${root}infra/bootstrap.mjs`, 'backup.ts', verb, ...args],
    { DATABASE_URL: t.databaseUrl, ...env },
    120_000,
  );

/** A node with the admin network's address and the noop chain test-top → test-middle → test-base, annealed. */
async function annealedNode(stack: Stack, name: string, mac: string): Promise<number> {
  const n = await stack.call('POST', '/nodes', { name, alive: true, mac });
  expect(n.status).toBe(201);
  await until(
    `${name}'s admin address`,
    async () =>
      (await stack.call('POST', '/network_allocations', { node: name, network: 'admin' })).status === 201,
    20_000,
    200,
  );
  expect((await stack.call('POST', '/node_roles', { node: name, role: 'test-top' })).status).toBe(201);
  await until(
    `${name}'s network-admin bound`,
    async () => (await stack.call('GET', `/nodes/${n.body.id}/node_roles/network-admin`)).status === 200,
  );
  expect((await stack.call('PUT', `/nodes/${n.body.id}/commit`)).status).toBe(200);
  await until(
    `${name}'s noderoles active`,
    async () => {
      const nrs = (await stack.call('GET', `/nodes/${n.body.id}/node_roles`)).body.noderoles as {
        state: string;
      }[];
      return nrs.length >= 4 && nrs.every((nr) => nr.state === 'active');
    },
    60_000,
    200,
  );
  return n.body.id as number;
}

/** What must survive: nodes, noderoles with their states, and every address. */
async function inventoryOf(stack: Stack) {
  const nodes = ((await stack.call('GET', '/nodes')).body.nodes as Record<string, unknown>[])
    .map((n) => ({ id: n.id, name: n.name, alive: n.alive, available: n.available, bootenv: n.bootenv }))
    .sort((a, b) => Number(a.id) - Number(b.id));
  const noderoles = ((await stack.call('GET', '/node_roles')).body.noderoles as Record<string, unknown>[])
    .map((nr) => ({ id: nr.id, node: nr.node, role: nr.role, state: nr.state }))
    .sort((a, b) => Number(a.id) - Number(b.id));
  const allocations = (
    (await stack.call('GET', '/networks/admin/allocations')).body.allocations as Record<string, unknown>[]
  )
    .map((a) => ({ node: a.node, address: a.address }))
    .sort((a, b) => String(a.address).localeCompare(String(b.address)));
  return { nodes, noderoles, allocations };
}

describe('backup and restore', () => {
  it('dump, wipe, restore: the same nodes, noderoles and addresses, and a new node anneals', async () => {
    s = await startStack(t, services, fast);
    await until(
      'network-admin role defined',
      async () => (await s!.call('GET', '/roles/network-admin')).status === 200,
      30_000,
    );
    await annealedNode(s, 'b1.backup.crowbar.test', '52:54:00:b0:00:01');
    await annealedNode(s, 'b2.backup.crowbar.test', '52:54:00:b0:00:02');
    const before = await inventoryOf(s);
    const ours = before.noderoles.filter((nr) => String(nr.node).endsWith('.backup.crowbar.test'));
    // Each node: network-admin and the chain test-top → test-middle → test-base (and what they pull in).
    for (const node of ['b1', 'b2'])
      expect(ours.filter((nr) => String(nr.node).startsWith(`${node}.`)).map((nr) => nr.role)).toEqual(
        expect.arrayContaining(['network-admin', 'test-top', 'test-middle', 'test-base']),
      );
    expect(ours.every((nr) => nr.state === 'active')).toBe(true);
    expect(before.allocations.every((a) => String(a.node).endsWith('.backup.crowbar.test'))).toBe(true);
    expect(before.allocations.filter((a) => /^198\.18\.0\./.test(String(a.address)))).toHaveLength(2);
    await s.stop();
    s = undefined;

    // The state dir's secrets go along.
    const state = `${dir}/state`;
    mkdirSync(`${state}/ssh`, { recursive: true, mode: 0o700 });
    writeFileSync(`${state}/operator-token`, 'operator-token-0123456789\n', { mode: 0o600 });
    writeFileSync(`${state}/ssh/id_ed25519`, 'not really a key\n', { mode: 0o600 });
    const b = await script('backup', ['--out', `${dir}/backup`, '--state-dir', state]);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    expect(b.stdout).toMatch(/\[backup\] backup written to /);
    const manifest = JSON.parse(readFileSync(`${dir}/backup/manifest.json`, 'utf8'));
    expect(manifest.schemas).toEqual(
      expect.arrayContaining(['inventory', 'network_ipam', 'annealer', 'jig_runner', 'gateway']),
    );
    expect(manifest.stateFiles).toEqual(['operator-token', 'ssh/id_ed25519']);
    expect(statSync(`${dir}/backup/crowbar.dump`).mode & 0o777).toBe(0o600);

    // The wipe: the database dropped, the file's streams deleted.
    const admin = new pg.Client({ connectionString: t.databaseUrl.replace(/\/[^/]*$/, '/postgres') });
    await admin.connect();
    await admin.query(`drop database "${new URL(t.databaseUrl).pathname.slice(1)}" with (force)`);
    await admin.end();
    const nc = await connect({ servers: t.natsUrl });
    const jsm = await jetstreamManager(nc);
    for await (const name of jsm.streams.names())
      if (name.startsWith(`${t.prefix.toUpperCase()}_`)) await jsm.streams.delete(name);
    const left: string[] = [];
    for await (const name of jsm.streams.names())
      if (name.startsWith(`${t.prefix.toUpperCase()}_`)) left.push(name);
    await nc.close();
    expect(left).toEqual([]);

    const restoredState = `${dir}/restored-state`;
    const r = await script('restore', ['--from', `${dir}/backup`, '--state-dir', restoredState]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/created the database/);
    expect(readFileSync(`${restoredState}/operator-token`, 'utf8')).toBe('operator-token-0123456789\n');
    expect(statSync(`${restoredState}/ssh/id_ed25519`).mode & 0o777).toBe(0o600);

    s = await startStack(t, services, fast);
    expect(await inventoryOf(s)).toEqual(before);
    // The stack works: a new node anneals and gets an address of its own.
    await annealedNode(s, 'b3.backup.crowbar.test', '52:54:00:b0:00:03');
    const after = await inventoryOf(s);
    expect(after.nodes).toHaveLength(before.nodes.length + 1);
    const addresses = after.allocations.map((a) => a.address);
    expect(new Set(addresses).size).toBe(addresses.length);
  }, 300_000);

  it('refuses to restore over a database that holds the services, and a directory that is no backup', async () => {
    const over = await script('restore', ['--from', `${dir}/backup`, '--state-dir', `${dir}/x`]);
    expect(over.code).toBe(1);
    expect(over.stderr).toMatch(
      /^\[backup\] the database crowbar_test_\w+ already holds annealer, gateway, inventory, jig_runner, network_ipam: stop every service/,
    );
    expect(over.stderr.trim().split('\n')).toHaveLength(1);
    const notBackup = await script('restore', ['--from', dir]);
    expect(notBackup.stderr).toMatch(/is not a Crowbar backup/);
    const noUrl = await script('backup', ['--out', `${dir}/b2`], { DATABASE_URL: undefined });
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toMatch(/^\[backup\] DATABASE_URL is not set: .*copy its state dir instead/);
  }, 120_000);
});
