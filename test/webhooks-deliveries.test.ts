import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { inventoryEvents } from '../shared/catalogue/index.js';
import { until } from './helpers/inventory.js';
import { testReadOnlyToken } from './helpers/stack.js';
import type { WebhookReceiver } from './helpers/webhook-receiver.js';
import { deliveryLogSettings, reasonOf, useWebhookStack } from './helpers/webhook-stack.js';

/**
 * The webhooks' delivery log (issue 17): the gateway on a nats-server of this file's own that gives it
 * the NATS user `npm start` gives it (test/helpers/webhook-stack.ts), real HTTP receivers on 127.0.0.1,
 * and events published on the bus as inventory's outbox would. An event is dead-lettered after 4
 * attempts, with backoff from 250 ms (so a `failed` row is there long enough to be seen); each log keeps
 * 20 events (`deliveryLogSettings`). Redelivery is tested in webhooks-redelivery.test.ts, with the same
 * settings.
 */
const h = useWebhookStack(deliveryLogSettings);
const keep = Number(deliveryLogSettings.CROWBAR_WEBHOOK_LOG_KEEP);
const { call, receiver, createHook, reasons, cli, run } = h;
const { publishSeq: publish, deliveryLog: log, deliveryRow: row } = h;

describe('webhooks: the delivery log', () => {
  let hook: { id: number; secret: string };
  let rec: WebhookReceiver;
  const seqs: Record<string, number> = {};

  it('logs failed attempts while they are retried, then the delivery, with status, error and timings', {
    timeout: 30_000,
  }, async () => {
    rec = await receiver();
    let down = true;
    rec.respond = () => (down ? 503 : 200);
    hook = await createHook(rec.url);
    seqs.flaky = await publish('log-flaky');
    const failed = await until('the log shows the failed attempt', async () => {
      const d = await row(hook.id, seqs.flaky!);
      return d?.status === 'failed' ? d : null;
    });
    expect(failed).toMatchObject({
      id: `${hook.id}-${seqs.flaky}`,
      webhook: hook.id,
      type: 'node.changed.v1',
      node: inventoryEvents.nodeChanged.example.node.name,
      httpStatus: 503,
      error: 'HTTP 503: not now',
      deliveredAt: null,
      redeliveries: 0,
    });
    expect(failed.attempts).toBeGreaterThanOrEqual(1);
    expect(failed.attempts).toBeLessThan(4);
    down = false;
    const done = await until('delivered', async () => {
      const d = await row(hook.id, seqs.flaky!);
      return d?.status === 'delivered' ? d : null;
    });
    // The receiver saw the same delivery id on every attempt, and the log counts them all.
    const attempts = rec.got.filter((x) => x.seq === seqs.flaky);
    expect(done.attempts).toBe(attempts.length);
    expect(new Set(attempts.map((x) => x.headers['webhook-id']))).toEqual(new Set([done.id]));
    expect(done).toMatchObject({ httpStatus: 200, error: 'HTTP 503: not now' });
    expect(done.eventId).toBe(JSON.parse(attempts[0]!.body).id);
    expect(Date.parse(done.deliveredAt)).toBeGreaterThanOrEqual(Date.parse(done.firstAttemptAt));
    expect(Date.parse(done.lastAttemptAt)).toBeGreaterThan(Date.parse(done.firstAttemptAt));
    expect(done.durationMs).toBeGreaterThanOrEqual(0);

    // A receiver that is not there: no HTTP status, the reason in words.
    await rec.close();
    seqs.refused = await publish('log-refused');
    const refused = await until('the refused attempt is logged', async () => {
      const d = await row(hook.id, seqs.refused!);
      return d?.status === 'failed' ? d : null;
    });
    expect(refused).toMatchObject({ httpStatus: null, error: 'connection refused' });
    await rec.listen();
    await until(
      'delivered once it is back',
      async () => (await row(hook.id, seqs.refused!))?.status === 'delivered',
    );
  });

  it('dead-letters an event after the bound with the reason, and the events after it go ahead', {
    timeout: 30_000,
  }, async () => {
    rec.respond = (_n, body) => (reasonOf(body) === 'log-poison' ? 503 : 200);
    seqs.poison = await publish('log-poison');
    seqs.after1 = await publish('log-after-1');
    seqs.after2 = await publish('log-after-2');
    await until('the events after it arrived', () => reasons(rec, 'log-after-').length === 2);
    expect(reasons(rec, 'log-after-')).toEqual(['log-after-1', 'log-after-2']);
    const tried = rec.got.filter((x) => x.seq === seqs.poison);
    expect(tried.map((x) => x.headers['x-crowbar-attempt'])).toEqual(['1', '2', '3', '4']);
    // Given up only after the bound: every attempt came before the first later event.
    const firstAfter = rec.got.findIndex((x) => x.seq === seqs.after1);
    expect(rec.got.findLastIndex((x) => x.seq === seqs.poison)).toBeLessThan(firstAfter);

    const dead = await row(hook.id, seqs.poison!);
    expect(dead).toMatchObject({
      id: `${hook.id}-${seqs.poison}`,
      status: 'dead-lettered',
      attempts: 4,
      httpStatus: 503,
      error: 'gave up after 4 attempts: HTTP 503: not now',
      deliveredAt: null,
    });
    const page = await log(hook.id);
    expect(page.deliveries.map((d) => d.seq)).toEqual(
      [seqs.after2, seqs.after1, seqs.poison, seqs.refused, seqs.flaky].map(Number),
    );
    expect(page.next).toBeNull();
    expect((await log(hook.id, '?status=dead-lettered')).deliveries.map((d) => d.seq)).toEqual([seqs.poison]);
    expect((await log(hook.id, '?status=failed')).deliveries).toEqual([]);
    const w = (await call('GET', `/webhooks/${hook.id}`)).body;
    expect(w).toMatchObject({ state: 'active', failures: 0, deadLettered: 1, pending: 0 });
    expect(w.lastError).toBe('gave up after 4 attempts: HTTP 503: not now');
  });

  it('refuses bad ids, cursors and filters of the log with a 4xx naming the field; read-only lists it', async () => {
    for (const [path, status, field] of [
      ['/webhooks/x1/deliveries', 422, 'id'],
      ['/webhooks/999/deliveries', 404, 'id'],
      [`/webhooks/${hook.id}/deliveries?limit=0`, 422, 'limit'],
      [`/webhooks/${hook.id}/deliveries?limit=1001`, 422, 'limit'],
      [`/webhooks/${hook.id}/deliveries?limit=ten`, 422, 'limit'],
      [`/webhooks/${hook.id}/deliveries?cursor=abc`, 422, 'cursor'],
      [`/webhooks/${hook.id}/deliveries?cursor=-1`, 422, 'cursor'],
      [`/webhooks/${hook.id}/deliveries?status=lost`, 422, 'status'],
    ] as const) {
      const r = await call('GET', path);
      expect([r.status, r.body.field], path).toEqual([status, field]);
      expect(r.body.message, path).toContain(field === 'id' && status === 404 ? 'webhook' : field);
    }
    const listed = await call('GET', `/webhooks/${hook.id}/deliveries`, undefined, testReadOnlyToken);
    expect(listed.status).toBe(200);
    expect(listed.body.deliveries.length).toBeGreaterThan(0);
  });
});

describe('webhooks: paging and retention of the log', () => {
  it(`pages newest first with limit/cursor/next, keeps the newest ${keep} events, and goes with its webhook`, {
    timeout: 60_000,
  }, async () => {
    const r = await receiver();
    const hook = await createHook(r.url);
    const published: number[] = [];
    for (let i = 0; i < 30; i++) published.push(await publish(`page-${i}`));
    await until('thirty delivered', () => reasons(r, 'page-').length === 30);
    // Pruned every 2 new events here (a tenth of what it keeps): after the 30th, exactly the newest 20.
    await until('the log holds the newest events only', async () => {
      const all = (await log(hook.id, '?limit=1000')).deliveries;
      return all.length === keep && all[0].seq === published.at(-1) && all[0].status === 'delivered';
    });
    const seen: number[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const page = await log(hook.id, `?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      sizes.push(page.deliveries.length);
      seen.push(...page.deliveries.map((d) => d.seq));
      cursor = page.next;
    } while (cursor);
    expect(sizes).toEqual([7, 7, 6]);
    expect(seen).toEqual(published.slice(-keep).reverse());

    // Deleting the webhook deletes its log (the rows go with it, not just out of sight).
    await call('DELETE', `/webhooks/${hook.id}`);
    expect((await call('GET', `/webhooks/${hook.id}/deliveries`)).status).toBe(404);
    const db = new pg.Client({ connectionString: h.t.databaseUrl });
    await db.connect();
    try {
      const left = await db.query(
        'SELECT count(*)::int AS n FROM gateway.webhook_deliveries WHERE webhook_id = $1',
        [hook.id],
      );
      expect(left.rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
  });
});

describe('webhooks: the CLI', () => {
  it('lists the log and asks for a redelivery', { timeout: 60_000 }, async () => {
    const r = await receiver();
    const hook = await createHook(r.url);
    const seq = await publish('cli-0');
    await until('delivered and logged', async () => (await row(hook.id, seq))?.status === 'delivered');
    const json = await cli(['webhooks', 'deliveries', String(hook.id), '--format', 'json']);
    expect(json.deliveries).toHaveLength(1);
    expect(json.deliveries[0]).toMatchObject({ id: `${hook.id}-${seq}`, status: 'delivered', attempts: 1 });
    const yaml = await run([
      'webhooks',
      'deliveries',
      String(hook.id),
      '--status',
      'delivered',
      '--format',
      'yaml',
    ]);
    expect(yaml.stdout).toContain(`id: ${hook.id}-${seq}`);
    const table = await run(['webhooks', 'deliveries', String(hook.id)]);
    expect([table.code, table.stderr]).toEqual([0, '']);
    expect(table.stdout).toContain(`${hook.id}-${seq}`);
    expect(table.stdout).toContain('delivered');
    expect(table.stdout).not.toContain('firstAttemptAt');
    const redelivered = await cli([
      'webhooks',
      'redeliver',
      String(hook.id),
      `${hook.id}-${seq}`,
      '--format',
      'json',
    ]);
    expect(redelivered).toMatchObject({ id: `${hook.id}-${seq}`, redeliveries: 1 });
    await until('sent again', () => r.got.filter((x) => x.seq === seq).length === 2);
    const bad = await run(['webhooks', 'redeliver', String(hook.id), 'latest']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('a delivery is its id <webhook>-<seq>');
    const missing = await run(['webhooks', 'redeliver', String(hook.id), `${hook.id}-999999`]);
    expect([missing.code, missing.stderr.trim()]).toEqual([
      4,
      `crowbar: webhook ${hook.id} has no delivery ${hook.id}-999999 in its log (field delivery).`,
    ]);
    const badStatus = await run(['webhooks', 'deliveries', String(hook.id), '--status', 'lost']);
    expect(badStatus.code).toBe(4);
    expect(badStatus.stderr).toContain('(field status)');
  });

  it('ran with the NATS permissions npm start gives the gateway: nothing refused', () => {
    expect(h.natsViolations()).toEqual([]);
  });
});
