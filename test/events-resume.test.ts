import { describe, expect, it } from 'vitest';
import { streamName } from '../shared/bus/streams.js';
import { inventoryEvents } from '../shared/catalogue/index.js';
import { until } from './helpers/inventory.js';
import { openSse, type SseClient } from './helpers/sse.js';
import { testAdminToken, useStack } from './helpers/stack.js';

// Resuming the event stream (GET /api/v2/events with Last-Event-ID) while events keep being published:
// a resumed client reads from its cursor with a consumer of its own, then joins the gateway's one live
// feed where the two meet; every event must arrive exactly once and in order across any number of
// reconnections. Events go into the EVENTS stream from a bus client of the test's, as a relay does.
const h = useStack(['gateway'], { CROWBAR_SSE_HEARTBEAT_MS: '1000' });

const auth = { authorization: `Bearer ${testAdminToken}` };
const events = (query = '') => `${h.stack.api}/events${query}`;
const nodeEvent = (id: number) => ({
  node: { ...inventoryEvents.nodeChanged.example.node, id },
  changed: ['alive'],
  reason: '',
});
const nodeIds = (c: SseClient, from = 0) =>
  c.messages.slice(from).map((m) => (JSON.parse(m.data) as { data: { node: { id: number } } }).data.node.id);

/** Publishes node.changed events 1..n one after another, interleaved with other types if asked. */
function publishInBackground(n: number, others = false) {
  let sent = 0;
  const done = (async () => {
    for (let i = 1; i <= n; i++) {
      await h.bus.publish(inventoryEvents.nodeChanged, nodeEvent(i));
      if (others && i % 3 === 0)
        await h.bus.publish(inventoryEvents.deploymentCreated, inventoryEvents.deploymentCreated.example);
      sent = i;
    }
  })();
  return { done, sent: () => sent };
}

describe('resuming the event stream while events are published', () => {
  it('five disconnections mid-stream: each event once, in order, and ids that keep increasing', async () => {
    const total = 400;
    let client = await openSse(events('?filter=node.changed'), auth);
    await client.waitForComment(/^connected$/);
    const pub = publishInBackground(total);
    const got: number[] = [];
    const ids: number[] = [];
    for (let round = 1; round <= 5; round++) {
      // Leave after a few more events, while the publisher is still going.
      await client.waitFor(Math.min(10 * round, total - got.length), 20_000);
      client.close();
      got.push(...nodeIds(client));
      ids.push(...client.messages.map((m) => Number(m.id)));
      client = await openSse(events('?filter=node.changed'), {
        ...auth,
        'last-event-id': String(ids.at(-1)),
      });
      expect(client.status).toBe(200);
    }
    await pub.done;
    expect(pub.sent()).toBe(total);
    await client.waitFor(total - got.length, 30_000);
    got.push(...nodeIds(client));
    ids.push(...client.messages.map((m) => Number(m.id)));
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
    client.close();
  }, 90_000);

  it('a filtered client resumed amid other event types gets only its own, each once', async () => {
    const total = 150;
    const first = await openSse(events('?filter=node.*'), auth);
    await first.waitForComment(/^connected$/);
    const pub = publishInBackground(total, true);
    await first.waitFor(40, 20_000);
    first.close();
    const last = first.messages.at(-1)!.id!;
    const resumed = await openSse(events('?filter=node.*'), { ...auth, 'last-event-id': last });
    await pub.done;
    await resumed.waitFor(total - first.messages.length, 30_000);
    const all = [...first.messages, ...resumed.messages];
    expect(
      all.map((m) => (JSON.parse(m.data) as { type: string }).type).every((t) => t === 'node.changed.v1'),
    ).toBe(true);
    expect([...nodeIds(first), ...nodeIds(resumed)]).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    resumed.close();
  }, 90_000);

  it('new events reach any number of clients from one consumer of the gateway', async () => {
    const stream = streamName(h.bus.prefix, 'EVENTS');
    const gw = h.stack.services.get('gateway')!;
    await until('no streams open', () => gw.detail().eventStreams === 0);
    // Consumers made from here on (ordered consumers of closed streams linger on the server a while).
    const t0 = Date.now();
    const made = async () =>
      (await h.bus.jsm.consumers.list(stream).next()).filter((c) => Date.parse(c.created) >= t0 - 1000);
    const clients = await Promise.all(
      Array.from({ length: 8 }, (_, i) => openSse(events(i % 2 ? '?filter=node.changed' : ''), auth)),
    );
    await Promise.all(clients.map((c) => c.waitForComment(/^connected$/)));
    const feed = await made();
    expect(feed).toHaveLength(1);
    expect(feed[0]!.config.filter_subject ?? feed[0]!.config.filter_subjects).toContain(
      `${h.bus.prefix}.evt.>`,
    );
    for (let i = 1; i <= 5; i++) await h.bus.publish(inventoryEvents.nodeChanged, nodeEvent(1000 + i));
    for (const c of clients) {
      await c.waitFor(5);
      expect(nodeIds(c)).toEqual([1001, 1002, 1003, 1004, 1005]);
    }
    for (const c of clients) c.close();
    await until('the streams closed', () => gw.detail().eventStreams === 0);
  }, 60_000);
});
