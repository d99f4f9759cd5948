import { describe, expect, it } from 'vitest';
import { createBatcher } from '../shared/batcher.js';

/** A send whose batches the test answers by hand. */
function manual<Q>() {
  const batches: { items: Q[]; answer: (r: unknown[]) => void; fail: (e: unknown) => void }[] = [];
  const send = (items: Q[]) =>
    new Promise<unknown[]>((answer, fail) => {
      batches.push({ items, answer, fail });
    });
  return { batches, send };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('createBatcher', () => {
  it('sends calls made in one turn together, and groups what arrives while batches are out', async () => {
    const m = manual<number>();
    const call = createBatcher({ maxBatch: 3, maxInFlight: 1, send: m.send });
    const first = [call(1), call(2)];
    await tick();
    expect(m.batches.map((b) => b.items)).toEqual([[1, 2]]);
    // While that batch is out, five more calls wait; they leave at most three at a time.
    const later = [3, 4, 5, 6, 7].map((i) => call(i));
    await tick();
    expect(m.batches).toHaveLength(1);
    m.batches[0]!.answer(['a', 'b']);
    await expect(Promise.all(first)).resolves.toEqual(['a', 'b']);
    await tick();
    expect(m.batches.map((b) => b.items)).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    m.batches[1]!.answer(['c', 'd', 'e']);
    await tick();
    expect(m.batches[2]!.items).toEqual([6, 7]);
    m.batches[2]!.answer(['f', 'g']);
    await expect(Promise.all(later)).resolves.toEqual(['c', 'd', 'e', 'f', 'g']);
  });

  it('keeps up to maxInFlight batches out at once', async () => {
    const m = manual<number>();
    const call = createBatcher({ maxBatch: 1, maxInFlight: 2, send: m.send });
    const all = [call(1), call(2), call(3)];
    await tick();
    expect(m.batches.map((b) => b.items)).toEqual([[1], [2]]);
    m.batches[1]!.answer(['two']);
    await tick();
    expect(m.batches.map((b) => b.items)).toEqual([[1], [2], [3]]);
    m.batches[0]!.answer(['one']);
    m.batches[2]!.answer(['three']);
    await expect(Promise.all(all)).resolves.toEqual(['one', 'two', 'three']);
  });

  it('fails only the calls of a failed batch, and the calls a short answer left out', async () => {
    const m = manual<number>();
    const call = createBatcher({ maxBatch: 2, maxInFlight: 2, send: m.send });
    const a = [call(1), call(2)];
    const b = [call(3), call(4)];
    await tick();
    m.batches[0]!.fail(new Error('inventory down'));
    m.batches[1]!.answer(['three']);
    await expect(a[0]).rejects.toThrow('inventory down');
    await expect(a[1]).rejects.toThrow('inventory down');
    await expect(b[0]).resolves.toBe('three');
    await expect(b[1]).rejects.toThrow(/answered 1 of 2/);
  });
});
