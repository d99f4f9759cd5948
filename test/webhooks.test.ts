import { describe, expect, it } from 'vitest';
import { streamName } from '../shared/bus/streams.js';
import { system } from '../shared/catalogue/index.js';
import { until } from './helpers/inventory.js';
import { testReadOnlyToken } from './helpers/stack.js';
import { signatureProblem, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { useWebhookStack } from './helpers/webhook-stack.js';

/**
 * Webhooks (issue 17) against a real stack — inventory and the gateway, on a nats-server of this file's
 * own that gives each service the user `npm start` gives it (test/helpers/webhook-stack.ts) — and real
 * HTTP receivers on 127.0.0.1. Backoff is short here (20 ms doubling to 200 ms) and an event is
 * dead-lettered after 4 attempts. The delivery log is tested in webhooks-deliveries.test.ts, redelivery
 * in webhooks-redelivery.test.ts.
 */
const h = useWebhookStack(
  {
    CROWBAR_WEBHOOK_ATTEMPTS: '4',
    CROWBAR_WEBHOOK_BACKOFF_MS: '20',
    CROWBAR_WEBHOOK_BACKOFF_MAX_MS: '200',
    CROWBAR_WEBHOOK_TIMEOUT_MS: '2000',
    CROWBAR_WEBHOOK_POLL_MS: '200',
  },
  ['inventory', 'gateway'],
);
const { call, receiver, createHook, reasons, cli, run } = h;
let marker = 0;
/** Publishes a node.changed event that says `reason`, for one of 50 nodes in turn. */
const publish = (reason: string) => h.publish(reason, { id: 1 + (marker++ % 50) });
const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

describe('webhooks: registering', () => {
  it('refuses bad input with a 422 naming the field, and writes from the read-only token', async () => {
    for (const [body, field] of [
      [{ url: 'ftp://tools.example.com/x' }, 'url'],
      [{ url: 'not a url' }, 'url'],
      [{ url: 'javascript:alert(1)' }, 'url'],
      [{}, 'url'],
      [{ url: 'http://127.0.0.1:9/x', filter: 'node..changed' }, 'filter'],
      [{ url: 'http://127.0.0.1:9/x', filter: 'no de' }, 'filter'],
      [{ url: 'http://127.0.0.1:9/x', secret: 'mine' }, 'secret'],
      [{ url: 'http://127.0.0.1:9/x', filter: 7 }, 'filter'],
    ] as const) {
      const r = await call('POST', '/webhooks', body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.body.field, JSON.stringify(r.body)).toBe(field);
      expect(r.body.message).toContain(field);
    }
    expect((await call('POST', '/webhooks', '[1]')).body.field).toBe('body');
    const ro = await call('POST', '/webhooks', { url: 'http://127.0.0.1:9/x' }, testReadOnlyToken);
    expect(ro.status).toBe(403);
    expect((await call('GET', '/webhooks', undefined, testReadOnlyToken)).body.webhooks).toEqual([]);
    expect((await call('GET', '/webhooks/x1')).body.field).toBe('id');
    expect((await call('GET', '/webhooks/999')).status).toBe(404);
    expect((await call('PUT', '/webhooks/999/resume')).status).toBe(404);
    expect((await call('DELETE', '/webhooks/999')).status).toBe(404);
  });
});

describe('webhooks: delivery', () => {
  it('delivers real events signed, in stream order, filtered; the secret shows once', {
    timeout: 60_000,
  }, async () => {
    const nodes = await receiver();
    const deps = await receiver();
    const both = await receiver();
    const a = await createHook(nodes.url, 'node.created');
    const b = await createHook(deps.url, 'deployment.*');
    const c = await createHook(both.url, 'node.created,deployment.created');
    expect((await call('GET', `/webhooks/${a.id}`)).body).not.toHaveProperty('secret');
    const names = Array.from({ length: 12 }, (_, i) => `n${i}.hooks.crowbar.test`);
    for (const name of names) expect((await call('POST', '/nodes', { name })).status).toBe(201);
    await call('PUT', `/nodes/${names[0]}`, { description: 'changed' });
    expect((await call('POST', '/deployments', { name: 'hooks' })).status).toBe(201);

    const created = (r: WebhookReceiver) =>
      r
        .accepted()
        .filter((x) => x.type === 'node.created.v1' && names.includes(JSON.parse(x.body).data.node.name));
    await until('every node.created reached the node hook', () => created(nodes).length === names.length);
    await until('deployment.created reached the deployment hook', () =>
      deps.accepted().some((x) => x.type === 'deployment.created.v1'),
    );
    await until('the two-pattern hook got both', () =>
      both.accepted().some((x) => x.type === 'deployment.created.v1'),
    );
    for (const [r, hook] of [
      [nodes, a],
      [deps, b],
      [both, c],
    ] as const) {
      for (const x of r.got) {
        expect(signatureProblem(hook.secret, x)).toBeNull();
        expect(x.headers['x-crowbar-delivery']).toBe(`${hook.id}-${x.seq}`);
        expect(x.headers['webhook-id']).toBe(`${hook.id}-${x.seq}`);
        expect(x.headers['content-type']).toBe('application/json');
        expect(JSON.parse(x.body).type).toBe(x.type);
      }
      expect(signatureProblem(a.secret === hook.secret ? b.secret : a.secret, r.got[0]!)).not.toBeNull();
      expect(increasing(r.got.map((x) => x.seq))).toBe(true);
      expect(r.got.every((x) => x.status === 200)).toBe(true);
    }
    // Each hook saw only what its filter lets through; the deployment event came after the nodes', so
    // the hooks had already passed every node event by the time it arrived.
    expect(new Set(nodes.got.map((x) => x.type))).toEqual(new Set(['node.created.v1']));
    expect(deps.got.every((x) => x.type.startsWith('deployment.'))).toBe(true);
    expect(new Set(both.got.map((x) => x.type))).toEqual(
      new Set(['node.created.v1', 'deployment.created.v1']),
    );
    expect(created(both).map((x) => x.seq)).toEqual(created(nodes).map((x) => x.seq));
    const shown = (await call('GET', `/webhooks/${a.id}`)).body;
    expect(shown).toMatchObject({ state: 'active', failures: 0, pending: 0, filter: 'node.created' });
    expect(shown.lastDeliveredSeq).toBe(nodes.got.at(-1)!.seq);
    for (const h of [a, b, c]) expect((await call('DELETE', `/webhooks/${h.id}`)).status).toBe(200);
  });

  it('retries a receiver that fails (an error status, a cut connection, refused) until it takes each event once', {
    timeout: 60_000,
  }, async () => {
    const r = await receiver();
    // 500, then a cut connection, then 200; the same again for the third event.
    r.respond = (n) => (n === 1 || n === 5 ? 500 : n === 2 || n === 6 ? 'cut' : 200);
    const hook = await createHook(r.url, 'node.changed');
    for (let i = 0; i < 5; i++) await publish(`flaky-${i}`);
    await until('five events taken', () => reasons(r, 'flaky-').length === 5);
    expect(reasons(r, 'flaky-')).toEqual(['flaky-0', 'flaky-1', 'flaky-2', 'flaky-3', 'flaky-4']);
    expect(r.got.map((x) => x.status)).toEqual([500, 0, 200, 200, 500, 0, 200, 200, 200]);
    // Every attempt at one event carries the same delivery id, and its attempt number.
    expect(r.got.slice(0, 3).map((x) => x.headers['x-crowbar-delivery'])).toEqual(
      Array(3).fill(`${hook.id}-${r.got[0]!.seq}`),
    );
    expect(r.got.slice(0, 3).map((x) => x.headers['x-crowbar-attempt'])).toEqual(['1', '2', '3']);
    const shown = (await call('GET', `/webhooks/${hook.id}`)).body;
    expect(shown).toMatchObject({ state: 'active', failures: 0 });
    expect(shown.lastError).toMatch(/closed|socket|reset/i);

    // Down (nothing listening), then back on the same port.
    await r.close();
    for (let i = 0; i < 3; i++) await publish(`down-${i}`);
    await until('refused attempts recorded', async () => {
      const w = (await call('GET', `/webhooks/${hook.id}`)).body;
      return w.failures >= 2 && w.lastError === 'connection refused';
    });
    await r.listen();
    await until('the three taken after it came back', () => reasons(r, 'down-').length === 3);
    expect(reasons(r, 'down-')).toEqual(['down-0', 'down-1', 'down-2']);
    expect((await call('GET', `/webhooks/${hook.id}`)).body.failures).toBe(0);
    await call('DELETE', `/webhooks/${hook.id}`);
  });

  it('dead-letters each event after the bound and goes on with the next, while the others keep receiving', {
    timeout: 60_000,
  }, async () => {
    const bad = await receiver();
    const good = await receiver();
    bad.respond = () => 503;
    const flaky = await createHook(bad.url, 'node.changed');
    const healthy = await createHook(good.url, 'node.changed');
    for (let i = 0; i < 3; i++) await publish(`bound-${i}`);
    const w = await until('all three dead-lettered', async () => {
      const x = (await call('GET', `/webhooks/${flaky.id}`)).body;
      return x.deadLettered === 3 ? x : null;
    });
    // Still active: nothing waits behind an event given up on.
    expect(w).toMatchObject({
      state: 'active',
      failures: 0,
      lastError: 'gave up after 4 attempts: HTTP 503: not now',
    });
    const seqs = [...new Set(bad.got.map((x) => x.seq))];
    expect(seqs).toHaveLength(3);
    expect(bad.got.map((x) => x.seq)).toEqual(seqs.flatMap((q) => Array(4).fill(q)));
    await until('the healthy webhook got all three', () => reasons(good, 'bound-').length === 3);
    const dead = (await call('GET', `/webhooks/${flaky.id}/deliveries?status=dead-lettered`)).body;
    expect(dead.deliveries.map((d: { seq: number }) => d.seq)).toEqual([...seqs].reverse());

    // The receiver is back: the next events reach it at once, in order.
    bad.respond = () => 204;
    for (let i = 3; i < 5; i++) await publish(`bound-${i}`);
    await until('the later events arrived', () => reasons(bad, 'bound-').length === 2);
    await until('the healthy webhook got five', () => reasons(good, 'bound-').length === 5);
    expect(reasons(bad, 'bound-')).toEqual(['bound-3', 'bound-4']);
    expect(reasons(good, 'bound-')).toEqual(['bound-0', 'bound-1', 'bound-2', 'bound-3', 'bound-4']);
    for (const h of [flaky, healthy]) await call('DELETE', `/webhooks/${h.id}`);
  });

  it('marks a webhook failing when its consumer is gone, and resume makes it again', {
    timeout: 60_000,
  }, async () => {
    const r = await receiver();
    const hook = await createHook(r.url, 'node.changed');
    await h.bus.jsm.consumers.delete(streamName(h.t.prefix, 'EVENTS'), `webhook-${hook.id}`);
    const w = await until('the webhook is failing', async () => {
      const x = (await call('GET', `/webhooks/${hook.id}`)).body;
      return x.state === 'failing' ? x : null;
    });
    expect(w).toMatchObject({ pending: null, failedSeq: null });
    expect(w.lastError).toMatch(/consumer webhook-\d+ is gone/);
    expect((await call('PUT', `/webhooks/${hook.id}/resume`, undefined, testReadOnlyToken)).status).toBe(403);
    const resumed = await call('PUT', `/webhooks/${hook.id}/resume`);
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ state: 'active', failures: 0 });
    await publish('resumed-0');
    await until('delivered after the resume', () => reasons(r, 'resumed-').length === 1);
    await call('DELETE', `/webhooks/${hook.id}`);
  });

  it('stops delivering once deleted: the consumer is gone too', async () => {
    const r = await receiver();
    const hook = await createHook(r.url, 'node.changed');
    await publish('before-delete');
    await until('delivered', () => reasons(r, 'before-delete').length === 1);
    const deleted = await call('DELETE', `/webhooks/${hook.id}`);
    expect(deleted.body).toMatchObject({ id: hook.id, url: r.url });
    expect((await call('GET', `/webhooks/${hook.id}`)).status).toBe(404);
    await expect(
      h.bus.jsm.consumers.info(streamName(h.t.prefix, 'EVENTS'), `webhook-${hook.id}`),
    ).rejects.toThrow(/not found/i);
    // A later event reaches a live webhook, never the deleted one.
    const live = await receiver();
    const other = await createHook(live.url, 'node.changed');
    await publish('after-delete');
    await until('the live one got it', () => reasons(live, 'after-delete').length === 1);
    expect(reasons(r, 'after-delete')).toEqual([]);
    await call('DELETE', `/webhooks/${other.id}`);
  });
});

describe('webhooks: gateways', () => {
  it('two gateways deliver each event once, in order; one stopping mid-stream loses nothing', {
    timeout: 90_000,
  }, async () => {
    const second = await h.extraGateway();
    const r = await receiver();
    // Some work per delivery, so the stop lands while deliveries are still to come.
    r.delayMs = 20;
    const hook = await createHook(r.url, 'node.changed');
    await until('both gateways run the webhook', () => second.detail().webhooks === 1);
    for (let i = 0; i < 40; i++) await publish(`two-${i}`);
    await until('some delivered', () => reasons(r, 'two-').length >= 10);
    await second.stop();
    expect(reasons(r, 'two-').length).toBeLessThan(40);
    for (let i = 40; i < 80; i++) await publish(`two-${i}`);
    await until('all eighty delivered', () => reasons(r, 'two-').length === 80, 30_000);
    expect(reasons(r, 'two-')).toEqual(Array.from({ length: 80 }, (_, i) => `two-${i}`));
    expect(r.got.every((x) => x.status === 200)).toBe(true);
    await call('DELETE', `/webhooks/${hook.id}`);
  });

  it('a gateway restarted mid-stream delivers every event published while it was down, once', {
    timeout: 90_000,
  }, async () => {
    const r = await receiver();
    r.delayMs = 20;
    const hook = await createHook(r.url, 'node.changed');
    for (let i = 0; i < 30; i++) await publish(`restart-${i}`);
    await until('some delivered', () => reasons(r, 'restart-').length >= 5);
    await h.stack.stopService('gateway');
    const atStop = r.got.length;
    expect(atStop).toBeLessThan(30);
    for (let i = 30; i < 60; i++) await publish(`restart-${i}`);
    expect(r.got.length).toBe(atStop);
    await h.stack.startService('gateway');
    await until('all sixty delivered', () => reasons(r, 'restart-').length === 60, 30_000);
    expect(reasons(r, 'restart-')).toEqual(Array.from({ length: 60 }, (_, i) => `restart-${i}`));
    expect(new Set(r.got.map((x) => x.seq)).size).toBe(r.got.length);
    await call('DELETE', `/webhooks/${hook.id}`);
  });

  it('the CLI lists, creates, shows, resumes and destroys webhooks', { timeout: 60_000 }, async () => {
    const r = await receiver();
    const created = await cli(['webhooks', 'create', r.url, '--filter', 'service.*', '--format', 'json']);
    expect(created.secret).toMatch(/^whsec_/);
    const list = await cli(['webhooks', 'list', '--format', 'json']);
    expect(list.webhooks.map((w: { id: number }) => w.id)).toContain(created.id);
    expect(list.webhooks.every((w: object) => !('secret' in w))).toBe(true);
    await h.bus.publish(system.serviceStarted, system.serviceStarted.example);
    await until('delivered', () => r.accepted().length === 1);
    const shown = await cli(['webhooks', 'show', String(created.id), '--format', 'json']);
    expect(shown).toMatchObject({ id: created.id, state: 'active', filter: 'service.*' });
    expect((await cli(['webhooks', 'resume', String(created.id), '--format', 'json'])).state).toBe('active');
    const table = await run(['webhooks', 'list']);
    expect(table.stdout).toContain(r.url);
    expect((await cli(['webhooks', 'destroy', String(created.id), '--format', 'json'])).id).toBe(created.id);
    const bad = await run(['webhooks', 'create', 'gopher://x']);
    expect([bad.code, bad.stderr.trim()]).toEqual([
      4,
      'crowbar: invalid webhook: url: must be an http:// or https:// URL (field url).',
    ]);
  });

  it('ran with the NATS permissions npm start gives the gateway: nothing refused', () => {
    expect(h.natsViolations()).toEqual([]);
  });
});
