import { expect, it } from 'vitest';
import { inventoryAnnealRpcs } from '../shared/catalogue/index.js';
import { op } from './helpers/inventory.js';
import { useStack } from './helpers/stack.js';

/**
 * Cluster roles (reference §1.11): every instance of a cluster role in a deployment is a parent of each
 * child bound to any of them, and a new instance adopts its peers' children. Inventory alone; the test
 * plays the annealer through the batch RPCs.
 */
const h = useStack(['inventory']);

const nodes: number[] = [];
const bind = async (node: string, role: string) => {
  const n = await op(h.bus, 'node.create', { name: node, alive: true, deployment: 'clu' });
  nodes.push(n.id);
  return (await op(h.bus, 'noderole.create', { node: n.id, role })).id as number;
};
/** Commits the deployment and every node (a node is available once committed). */
const commitAll = async () => {
  await op(h.bus, 'deployment.commit', { deployment: 'clu' });
  for (const n of nodes) await op(h.bus, 'node.commit', { node: n });
};
const parentsOf = async (id: number) => {
  const g = await op(h.bus, 'deployment.graph', { deployment: 'clu' });
  return (g.edges as { parent: number; child: number }[])
    .filter((e) => e.child === id)
    .map((e) => e.parent)
    .sort((x, y) => x - y);
};
const state = async (id: number) => (await op(h.bus, 'noderole.get', { noderole: id })).state as string;

it('binds a child under every instance, adopts it into a new one, and promotes it once all are ACTIVE', async () => {
  await op(h.bus, 'deployment.create', { name: 'clu' });
  const a = await bind('a.cluster.example.com', 'test-cluster');
  const c = await bind('c.cluster.example.com', 'test-cluster');
  const client = await bind('client.cluster.example.com', 'test-cluster-client');
  expect(await parentsOf(client)).toEqual([a, c]);
  const d = await bind('d.cluster.example.com', 'test-cluster');
  expect(await parentsOf(client)).toEqual([a, c, d]);

  await commitAll();
  expect([await state(a), await state(c), await state(d), await state(client)]).toEqual([
    'todo',
    'todo',
    'todo',
    'blocked',
  ]);
  const tok = (id: number) => `tok-${id}`;
  const started = await h.bus.request(inventoryAnnealRpcs.startRuns, {
    runs: [a, c, d].map((id) => ({ noderoleId: id, token: tok(id) })),
  });
  expect(started.results.map((r) => ('result' in r ? r.result.reason : r.error))).toEqual([
    'started',
    'started',
    'started',
  ]);

  // Two of three parents finish: the client waits for the third.
  const finish = (ids: number[]) =>
    h.bus.request(inventoryAnnealRpcs.finishRuns, {
      runs: ids.map((id) => ({ noderoleId: id, token: tok(id), ok: true, wall: null, runlog: 'ok' })),
    });
  expect((await finish([a, c])).results).toEqual([
    { result: { applied: true, state: 'active' } },
    { result: { applied: true, state: 'active' } },
  ]);
  expect(await state(client)).toBe('blocked');
  await finish([d]);
  expect(await state(client)).toBe('todo');
});

it('promotes a child whose parents finish together in one batch', async () => {
  const e = await bind('e.cluster.example.com', 'test-cluster');
  const f = await bind('f.cluster.example.com', 'test-cluster');
  const client = await bind('client2.cluster.example.com', 'test-cluster-client');
  expect(await parentsOf(client)).toEqual(expect.arrayContaining([e, f]));
  await commitAll();
  // The earlier instances are ACTIVE; the new ones and this client wait.
  const peers = (await op(h.bus, 'deployment.graph', { deployment: 'clu' })).vertices as {
    id: number;
    role: string;
    state: string;
  }[];
  const waiting = peers.filter((v) => v.role === 'test-cluster' && v.state === 'todo').map((v) => v.id);
  expect(waiting.sort()).toEqual([e, f].sort());
  await h.bus.request(inventoryAnnealRpcs.startRuns, {
    runs: waiting.map((id) => ({ noderoleId: id, token: `t2-${id}` })),
  });
  const done = await h.bus.request(inventoryAnnealRpcs.finishRuns, {
    runs: waiting.map((id) => ({ noderoleId: id, token: `t2-${id}`, ok: true, wall: null, runlog: '' })),
  });
  expect(done.results.every((r) => 'result' in r && r.result.state === 'active')).toBe(true);
  const g = await op(h.bus, 'noderole.get', { noderole: client });
  expect(g.state).toBe('todo');
});
