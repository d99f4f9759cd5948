import { expect, it } from 'vitest';
import { inventoryEvents } from '../shared/catalogue/index.js';
import { openSse } from './helpers/sse.js';
import { testAdminToken, useStack } from './helpers/stack.js';

// A burst of events larger than a client's buffer, arriving faster than the gateway's coalesced writes
// (at most one per 10 ms): a client that reads must get all of it, never be dropped as too slow for
// what the gateway itself held back. The buffer is small here (64 KiB) so that a burst of 200 events of
// 2 KB (400 KB) is many buffers' worth.
const h = useStack(['gateway'], { CROWBAR_SSE_MAX_BUFFER: '65536' });

const auth = { authorization: `Bearer ${testAdminToken}` };
const padded = (id: number) => ({
  node: { ...inventoryEvents.nodeChanged.example.node, id },
  changed: ['alive'],
  reason: 'x'.repeat(2000),
});

it('a reader gets a burst of many buffers of events, in order, and is not dropped', async () => {
  const reader = await openSse(`${h.stack.api}/events?filter=node.changed`, auth);
  await reader.waitForComment(/^connected$/);
  const n = 200;
  for (let round = 0; round < 3; round++)
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        h.bus.publish(inventoryEvents.nodeChanged, padded(round * n + i + 1)),
      ),
    );
  const got = await reader.waitFor(3 * n, 30_000).catch(() => reader.messages);
  expect(got.filter((m) => m.event === 'dropped').map((m) => m.data)).toEqual([]);
  expect(got).toHaveLength(3 * n);
  const ids = got.map((m) => Number(m.id));
  expect(ids).toEqual([...ids].sort((a, b) => a - b));
  reader.close();
});
