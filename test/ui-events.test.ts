import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { inventoryEvents, system } from '../shared/catalogue/index.js';
import { until } from './helpers/inventory.js';
import { openSse, type SseClient } from './helpers/sse.js';
import { testAdminToken, testReadOnlyToken, useStack } from './helpers/stack.js';

// The gateway's event stream (GET /api/v2/events) against a real gateway and nats-server: events are
// published into the EVENTS stream by a bus client of the test's, as any service's outbox relay does.
const h = useStack(['gateway'], {
  CROWBAR_SSE_HEARTBEAT_MS: '200',
  CROWBAR_SSE_MAX_BUFFER: String(1 << 20),
});

const node = (id: number, reason = '') => ({
  node: { ...inventoryEvents.nodeChanged.example.node, id },
  changed: ['alive'],
  reason,
});
const auth = { authorization: `Bearer ${testAdminToken}` };
const events = (query = '') => `${h.stack.api}/events${query}`;
const open: SseClient[] = [];
const sse = async (url: string, headers: Record<string, string> = auth) => {
  const c = await openSse(url, headers);
  open.push(c);
  return c;
};
const closeAll = () => {
  for (const c of open.splice(0)) c.close();
};
const data = (m: { data: string }) => JSON.parse(m.data) as { type: string; data: any };

describe('GET /api/v2/events', () => {
  it('needs a token: header or ?token= (this route only); the read-only token may subscribe', async () => {
    expect((await fetch(events())).status).toBe(401);
    expect((await fetch(events('?token=wrong-token-0123456789'))).status).toBe(401);
    const ro = await sse(events(`?token=${testReadOnlyToken}`), {});
    expect(ro.status).toBe(200);
    const hdr = await sse(events(), { authorization: `Bearer ${testReadOnlyToken}` });
    expect(hdr.status).toBe(200);
    // ?token= is not a way in anywhere else.
    expect((await fetch(`${h.stack.api}/nodes?token=${testAdminToken}`)).status).toBe(401);
    closeAll();
  });

  it('refuses a bad filter or cursor with a 422 naming it', async () => {
    for (const [q, field] of [
      ['?filter=node..changed', 'filter'],
      ['?filter=no%20de', 'filter'],
      ['?filter=>.node', 'filter'],
      ['?since=-1', 'since'],
      ['?since=abc', 'since'],
    ] as const) {
      const r = await fetch(events(q), { headers: auth });
      expect(r.status, q).toBe(422);
      const body = (await r.json()) as { message: string; field: string };
      expect(body.field).toBe(field);
      expect(body.message).toContain(field);
    }
    const r = await fetch(events(), { headers: { ...auth, 'last-event-id': 'x1' } });
    expect(r.status).toBe(422);
    expect(((await r.json()) as { message: string }).message).toContain('Last-Event-ID');
  });

  it('streams new events with their stream sequence as id, filtered by type pattern', async () => {
    const all = await sse(events());
    const nodes = await sse(events('?filter=node.*'));
    const two = await sse(events('?filter=node.changed,deployment.>'));
    await Promise.all([all, nodes, two].map((c) => c.waitForComment(/^connected$/)));
    await h.bus.publish(inventoryEvents.nodeChanged, node(1));
    await h.bus.publish(inventoryEvents.deploymentCreated, inventoryEvents.deploymentCreated.example);
    await h.bus.publish(inventoryEvents.nodeCreated, { node: node(2).node });
    await h.bus.publish(system.serviceStarted, system.serviceStarted.example);
    const got = await all.waitFor(4);
    expect(got.map((m) => data(m).type)).toEqual([
      'node.changed.v1',
      'deployment.created.v1',
      'node.created.v1',
      'service.started.v1',
    ]);
    const ids = got.map((m) => Number(m.id));
    expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1)).toBe(true);
    expect((await nodes.waitFor(2)).map((m) => data(m).type)).toEqual(['node.changed.v1', 'node.created.v1']);
    expect((await two.waitFor(2)).map((m) => [m.id, data(m).type])).toEqual([
      [String(ids[0]), 'node.changed.v1'],
      [String(ids[1]), 'deployment.created.v1'],
    ]);
    closeAll();
  });

  it('resumes exactly after Last-Event-ID (and ?since=), every event once', async () => {
    const first = await sse(events('?filter=node.changed'));
    await first.waitForComment(/^connected$/);
    for (let i = 1; i <= 10; i++) await h.bus.publish(inventoryEvents.nodeChanged, node(100 + i));
    const seen = await first.waitFor(4);
    first.close();
    const last = seen[3]!.id!;
    for (let i = 11; i <= 15; i++) await h.bus.publish(inventoryEvents.nodeChanged, node(100 + i));
    const resumed = await sse(events('?filter=node.changed&since=1'), { ...auth, 'last-event-id': last });
    const rest = await resumed.waitFor(11);
    const nodeIds = [...seen, ...rest].map((m) => data(m).data.node.id);
    expect(nodeIds).toEqual(Array.from({ length: 15 }, (_, i) => 101 + i));
    // Nothing after the last one: a sixteenth event is the next message, not a duplicate.
    await h.bus.publish(inventoryEvents.nodeChanged, node(116));
    const [, , , , , , , , , , , next] = await resumed.waitFor(12);
    expect(data(next!).data.node.id).toBe(116);
    expect(resumed.messages).toHaveLength(12);
    // ?since= is the same cursor for a client that is not reconnecting.
    const since = await sse(events(`?filter=node.changed&since=${last}`));
    expect((await since.waitFor(12)).map((m) => data(m).data.node.id)).toEqual(nodeIds.slice(4).concat(116));
    closeAll();
  });

  it('sends heartbeat comments while nothing happens', async () => {
    const c = await sse(events('?filter=nothing.here'));
    await c.waitForComment(/^heartbeat$/, 2000);
    expect(c.messages).toHaveLength(0);
    closeAll();
  });

  it('drops a client that does not read, with a reason, while another keeps up', async () => {
    const gw = h.stack.services.get('gateway')!;
    // The earlier tests' streams are gone (the gateway saw their clients go).
    await until('no streams open', () => gw.detail().eventStreams === 0);
    const before = 0;
    const fast = await sse(events('?filter=node.changed&since=0'));
    await fast.waitForComment(/^connected$/);
    await h.bus.publish(inventoryEvents.nodeChanged, node(999));
    await until('the marker event', () => fast.messages.some((m) => data(m).data.node.id === 999));
    const existing = fast.messages.length;
    // The slow client: node:http applies backpressure to the socket while its response is paused.
    let slowText = '';
    let slowEnded = false;
    const slow = http.get(events('?filter=node.changed'), { headers: auth });
    const slowRes = await new Promise<http.IncomingMessage>((r) => slow.once('response', r));
    slowRes.pause();
    slowRes.setEncoding('utf8');
    await until('both streams open', () => gw.detail().eventStreams === before + 2);
    const big = 'x'.repeat(10_000);
    let published = 0;
    while (gw.detail().eventStreams === before + 2) {
      if (process.env.TEST_DEBUG) console.log('published', published, fast.messages.length);
      expect(published, 'the slow client was never dropped').toBeLessThan(8000);
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => h.bus.publish(inventoryEvents.nodeChanged, node(i + 1, big))),
      );
      published += 20;
    }
    // The reader that keeps up got everything, while the slow one was stuck.
    const got = await fast.waitFor(existing + published, 30_000);
    expect(got).toHaveLength(existing + published);
    expect(got.filter((m) => m.event !== undefined)).toEqual([]);
    // The slow one, reading again, finds the reason at the end of what was queued for it, then the end.
    const ended = new Promise<void>((r) => {
      slowRes.on('data', (chunk: string) => {
        slowText += chunk;
      });
      slowRes.once('end', () => {
        slowEnded = true;
        r();
      });
    });
    slowRes.resume();
    await ended;
    expect(slowEnded).toBe(true);
    const tail = slowText.slice(slowText.lastIndexOf('event: dropped'));
    expect(tail).toMatch(/^event: dropped\ndata: \{"reason":"client too slow: more than 1048576 bytes/);
    const lastId = JSON.parse(tail.split('\n')[1]!.slice(6)).lastId as number;
    expect(slowText).toContain(`id: ${lastId}\n`);
    expect(fast.messages.some((m) => Number(m.id) > lastId)).toBe(true);
    closeAll();
  }, 90_000);

  it('serves the web UI at / (pages as index.html), its assets, and nothing outside its build', async () => {
    const base = h.stack.api.replace(/\/api\/v2$/, '');
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${base}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    // A page path is the app; a missing asset, a path out of the build or a bad escape is not.
    expect(await (await fetch(`${base}/deployments/3`)).text()).toBe(html);
    expect((await fetch(`${base}/assets/missing.js`)).status).toBe(404);
    expect(await (await fetch(`${base}/%2e%2e/%2e%2e/package.json`)).text()).toBe(html);
    expect((await fetch(`${base}/%E0%A4%A`)).status).toBe(400);
    // The API keeps its JSON 404.
    const api = await fetch(`${base}/api/v2/nope`, { headers: auth });
    expect(api.status).toBe(404);
    expect(((await api.json()) as { code: string }).code).toBe('not_found');
  });
});
