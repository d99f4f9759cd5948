import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../shared/bus/bus.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

// Attribs as the reference describes them (§1.6), and the destructive-role skip (§1.5, §3.3; DESIGN §4
// #7) seen where an operator looks: the runlog, the run list and the run.finished event.
let t: TestEnv;
let s: Stack;
let bus: Bus;
const finished: { noderoleId: number; outcome: string }[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_ANNEAL_PASS_MS: '100',
  });
  bus = await connectTestBus(t);
  bus.nc.subscribe(bus.subject('evt.run.finished.>'), {
    callback: (_e, m) => {
      finished.push(JSON.parse(new TextDecoder().decode(m.data)).data);
    },
  });
});
afterAll(async () => {
  await bus?.close();
  await s?.stop();
  await t?.cleanup();
});

const ok = async (method: string, path: string, body?: unknown) => {
  const r = await s.call(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const noderole = (id: number) => ok('GET', `/node_roles/${id}`);
/** A node with `role` bound, committed and annealed to ACTIVE. */
async function activeOn(name: string, role: string) {
  const n = await ok('POST', '/nodes', { name, alive: true });
  const nr = await ok('POST', '/node_roles', { node: n.id, role });
  await ok('PUT', `/nodes/${n.id}/commit`);
  await until(`${role} active`, async () => (await noderole(nr.id)).state === 'active');
  return { node: n.id as number, nr: nr.id as number };
}

describe('attribs (reference §1.6)', () => {
  it('§1.6: writing a node attrib re-runs the noderoles whose roles want it, with the new value', async () => {
    const { node, nr } = await activeOn('at1.lab.crowbar.test', 'test-rack-aware');
    const other = await ok('POST', '/node_roles', { node, role: 'test-quick' });
    await ok('PUT', `/node_roles/${other.id}/commit`);
    await until('test-quick active', async () => (await noderole(other.id)).state === 'active');
    expect(await ok('PUT', `/nodes/${node}/attribs/test-rack`, { value: 'r12' })).toMatchObject({
      value: 'r12',
      pending: false,
    });
    expect((await ok('GET', `/nodes/${node}/attribs/test-rack`)).value).toBe('r12');
    // Poked in the same transaction: it goes back to TODO (or is already running again) …
    expect(['todo', 'transition', 'active']).toContain((await noderole(nr)).state);
    await until('test-rack-aware ran again', async () => (await noderole(nr)).runCount === 2);
    // … and only it: test-quick does not want the attrib.
    expect((await noderole(other.id)).runCount).toBe(1);
    // The run saw the value at the attrib's map (reference §1.12 step 1).
    const db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    const run = await db.query(
      'select data from annealer.runs where noderole_id = $1 order by id desc limit 1',
      [nr],
    );
    await db.end();
    expect(run.rows[0].data.test).toEqual({ rack: 'r12' });
  });

  it('§1.6: a role-owned attrib on a node is the node’s noderole of that role; the template gives defaults', async () => {
    const n = await ok('POST', '/nodes', { name: 'at2.lab.crowbar.test', alive: true });
    const missing = await s.call('GET', `/nodes/${n.id}/attribs/test-templated_colour`);
    expect([missing.status, missing.body.field]).toEqual([404, 'attrib']);
    const nr = await ok('POST', '/node_roles', { node: n.id, role: 'test-templated' });
    // Template (blue) over the attrib's default (grey); an attrib the template leaves out: its default.
    expect((await ok('GET', `/nodes/${n.id}/attribs/test-templated_colour`)).value).toBe('blue');
    expect((await ok('GET', `/node_roles/${nr.id}/attribs/test-templated_disk`)).value).toBeNull();
    await ok('PUT', `/nodes/${n.id}/attribs/test-templated_colour`, { value: 'green' });
    expect((await noderole(nr.id)).proposedData).toEqual({ test: { templated: { colour: 'green' } } });
    expect((await ok('GET', `/node_roles/${nr.id}/attribs/test-templated_colour`)).value).toBe('green');
    expect((await ok('GET', `/nodes/${n.id}`)).hint).toEqual({});
  });

  it('§1.6: writes to a committed noderole or deployment role go to its proposed data until commit', async () => {
    const { nr } = await activeOn('at3.lab.crowbar.test', 'test-templated');
    const w = await ok('PUT', `/node_roles/${nr}/attribs/test-templated_colour`, { value: 'red' });
    expect(w.pending).toBe(true);
    const after = await noderole(nr);
    expect(after).toMatchObject({ state: 'active', runCount: 1, committedData: {} });
    expect(await ok('GET', `/node_roles/${nr}/attribs/test-templated_colour`)).toEqual({
      name: 'test-templated_colour',
      value: 'blue',
      proposed: 'red',
    });
    await ok('PUT', `/node_roles/${nr}/propose`);
    await ok('PUT', `/node_roles/${nr}/commit`);
    await until('re-run with the committed value', async () => (await noderole(nr)).runCount === 2);
    expect((await ok('GET', `/node_roles/${nr}/attribs/test-templated_colour`)).value).toBe('red');

    const dr = ((await ok('GET', '/deployments/system/deployment_roles')).deployment_roles as any[]).find(
      (d) => d.role === 'test-templated',
    );
    expect(
      (await ok('PUT', `/deployment_roles/${dr.id}/attribs/test-templated_disk`, { value: { size: 8 } }))
        .pending,
    ).toBe(true);
    expect(await ok('GET', `/deployment_roles/${dr.id}`)).toMatchObject({
      proposedData: { test: { templated: { disk: { size: 8 } } } },
      committedData: {},
    });
    expect((await noderole(nr)).state).toBe('active');
    await ok('PUT', `/deployment_roles/${dr.id}/commit`);
    await until('re-run with the deployment role data', async () => (await noderole(nr)).runCount === 3);
    expect((await ok('GET', `/node_roles/${nr}/attribs/test-templated_disk`)).value).toEqual({ size: 8 });
  });

  it('§1.6: schema checks cover nested values; a bad value is refused naming the field and changes nothing', async () => {
    const n = await ok('POST', '/nodes', { name: 'at4.lab.crowbar.test' });
    const nr = await ok('POST', '/node_roles', { node: n.id, role: 'test-templated' });
    for (const [value, message] of [
      [{ size: 'big' }, /value\.size: must be integer, got string/],
      [{ label: 'x' }, /value\.size: is required/],
      [{ size: 0 }, /value\.size: must be at least 1/],
      [{ size: 4, colour: 'red' }, /value\.colour: is not allowed/],
      ['8G', /value: must be object, got string/],
      // A body without a value (`{}`): the attrib's own check names what is missing.
      [undefined, /value: must be object, got undefined/],
    ] as const) {
      const r = await s.call('PUT', `/node_roles/${nr.id}/attribs/test-templated_disk`, { value });
      expect(r.status).toBe(422);
      expect(r.body.field).toBe('value');
      expect(r.body.message).toMatch(message);
    }
    const bad = await s.call('PUT', `/node_roles/${nr.id}/attribs/test-templated_colour`, { value: 'pink' });
    expect([bad.status, bad.body.field]).toEqual([422, 'value']);
    expect((await noderole(nr.id)).proposedData).toEqual({});
    const keys = await s.call('PUT', `/node_roles/${nr.id}/attribs/crowbar-access_keys`, {
      value: { alice: 42 },
    });
    expect(keys.status).toBe(422);
  });
});

describe('destructive roles (reference §1.5, §3.3)', () => {
  it('a destructive role that already succeeded is skipped on later anneals, visibly', async () => {
    const { nr } = await activeOn('once.lab.crowbar.test', 'test-once');
    await until('first run finished', () => finished.some((f) => f.noderoleId === nr));
    expect(finished.filter((f) => f.noderoleId === nr).map((f) => f.outcome)).toEqual(['active']);
    expect((await ok('PUT', `/node_roles/${nr}/retry`)).state).toBe('todo');
    await until('second anneal', async () => (await noderole(nr)).runCount === 2);
    const after = await noderole(nr);
    expect(after.state).toBe('active');
    expect(after.runlog).toMatch(/^skipped: destructive role has already run/);
    await until('skip event', () => finished.filter((f) => f.noderoleId === nr).length === 2);
    expect(finished.filter((f) => f.noderoleId === nr).map((f) => f.outcome)).toEqual(['active', 'skipped']);
    const runs = ((await ok('GET', '/runs?all=true')).runs as any[]).filter((r) => r.noderoleId === nr);
    expect(runs.map((r) => r.reason)).toEqual([
      expect.stringMatching(/^skipped: destructive role has already run/),
      'active',
    ]);
  });
});
