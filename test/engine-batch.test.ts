import { expect, it } from 'vitest';
import { inventoryAnnealRpcs } from '../shared/catalogue/index.js';
import { namedStatementCount } from '../shared/db/prepared.js';
import { op } from './helpers/inventory.js';
import { useStack } from './helpers/stack.js';

/** Inventory alone: the test plays the annealer and drives runs through the batch RPCs. */
const h = useStack(['inventory']);

const base = async (name: string) => {
  const n = await op(h.bus, 'node.create', { name, alive: true });
  await op(h.bus, 'noderole.create', { node: n.id, role: 'test-middle' });
  await op(h.bus, 'node.commit', { node: n.id });
  const nr = await op(h.bus, 'noderole.get', { node: n.id, role: 'test-base' });
  expect(nr.state).toBe('todo');
  return nr.id as number;
};
const state = async (id: number) => (await op(h.bus, 'noderole.get', { noderole: id })).state as string;

it('starts and finishes runs in batches: answers in request order, each item fenced on its own', async () => {
  const [a, c, d] = [
    await base('a.batch.example.com'),
    await base('c.batch.example.com'),
    await base('d.batch.example.com'),
  ];
  // Out of id order, with one noderole that does not exist.
  const started = await h.bus.request(inventoryAnnealRpcs.startRuns, {
    runs: [
      { noderoleId: d, token: 'tok-d' },
      { noderoleId: 999_999, token: 'tok-x' },
      { noderoleId: a, token: 'tok-a' },
      { noderoleId: c, token: 'tok-c' },
    ],
  });
  const out = started.results.map((r) =>
    'result' in r ? [r.result.started, r.result.node?.name ?? null] : r.error,
  );
  expect(out).toEqual([
    [true, 'd.batch.example.com'],
    [false, null],
    [true, 'a.batch.example.com'],
    [true, 'c.batch.example.com'],
  ]);
  expect([await state(a), await state(c), await state(d)]).toEqual([
    'transition',
    'transition',
    'transition',
  ]);

  const finished = await h.bus.request(inventoryAnnealRpcs.finishRuns, {
    runs: [
      { noderoleId: c, token: 'not-the-token', ok: true, wall: null, runlog: 'late' },
      { noderoleId: a, token: 'tok-a', ok: true, wall: { written: 1 }, runlog: 'fine' },
      { noderoleId: d, token: 'tok-d', ok: false, wall: null, runlog: 'it broke' },
    ],
  });
  expect(finished.results).toEqual([
    { result: { applied: false, state: 'transition' } },
    { result: { applied: true, state: 'active' } },
    { result: { applied: true, state: 'error' } },
  ]);
  expect([await state(a), await state(c), await state(d)]).toEqual(['active', 'transition', 'error']);
  // a's child was promoted in the same transaction; d's child is blocked by the failure.
  const childOf = async (name: string) =>
    (await op(h.bus, 'noderole.get', { node: name, role: 'test-middle' })).state as string;
  expect(await childOf('a.batch.example.com')).toBe('todo');
  expect(await childOf('d.batch.example.com')).toBe('blocked');
});

it('refuses an empty or oversized batch, naming the field, and changes nothing', async () => {
  await expect(h.bus.request(inventoryAnnealRpcs.startRuns, { runs: [] })).rejects.toThrow(/runs/);
  const many = Array.from({ length: 501 }, (_, i) => ({ noderoleId: i + 1, token: `t${i}` }));
  await expect(h.bus.request(inventoryAnnealRpcs.startRuns, { runs: many })).rejects.toThrow(/runs/);
});

it('keeps values out of SQL texts: binding and running more nodes adds no new prepared statements', async () => {
  // Every distinct text takes one of a bounded set of statement names; a text carrying values would use
  // them up, after which the engine's queries are planned on every call.
  const cycle = async (name: string) => {
    const id = await base(name);
    await h.bus.request(inventoryAnnealRpcs.startRuns, { runs: [{ noderoleId: id, token: `tok-${name}` }] });
    const r = await h.bus.request(inventoryAnnealRpcs.finishRuns, {
      runs: [{ noderoleId: id, token: `tok-${name}`, ok: true, wall: null, runlog: '' }],
    });
    expect(r.results).toEqual([{ result: { applied: true, state: 'active' } }]);
  };
  await cycle('warm-1.batch.example.com');
  await cycle('warm-2.batch.example.com');
  const before = namedStatementCount();
  for (let i = 0; i < 6; i++) await cycle(`more-${i}.batch.example.com`);
  expect(namedStatementCount()).toBe(before);
});

it('starts one run per node even when a batch asks for two on the same node', async () => {
  const n = await op(h.bus, 'node.create', { name: 'pair.batch.example.com', alive: true });
  await op(h.bus, 'noderole.create', { node: n.id, role: 'test-base' });
  await op(h.bus, 'noderole.create', { node: n.id, role: 'test-shared' });
  await op(h.bus, 'node.commit', { node: n.id });
  const ids = await Promise.all(
    ['test-base', 'test-shared'].map(async (role) => {
      const nr = await op(h.bus, 'noderole.get', { node: n.id, role });
      expect(nr.state).toBe('todo');
      return nr.id as number;
    }),
  );
  const r = await h.bus.request(inventoryAnnealRpcs.startRuns, {
    runs: ids.map((id) => ({ noderoleId: id, token: `pair-${id}` })),
  });
  const started = r.results.map((x) => ('result' in x ? x.result.started : x.error));
  expect(started).toEqual([true, false]);
  expect(r.results[1]).toMatchObject({ result: { started: false, reason: 'not runnable (state todo)' } });
  expect([await state(ids[0]!), await state(ids[1]!)]).toEqual(['transition', 'todo']);
  // The same token again is "already started", with the run's data staged again.
  const again = await h.bus.request(inventoryAnnealRpcs.startRuns, {
    runs: [{ noderoleId: ids[0]!, token: `pair-${ids[0]}` }],
  });
  expect(again.results[0]).toMatchObject({
    result: { started: true, reason: 'already started', node: { name: 'pair.batch.example.com' } },
  });
});
