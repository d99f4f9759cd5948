import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../infra/nats.js';
import { natsAuthorization, natsCredentials, natsUrlFor } from '../infra/nats-auth.js';
import { pickPort } from '../infra/ports.js';
import { Bus } from '../shared/bus/bus.js';
import { streamName } from '../shared/bus/streams.js';
import { inventoryEvents } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { runCrowbar } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { until } from './helpers/inventory.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';
import { type Received, signatureProblem, WebhookReceiver } from './helpers/webhook-receiver.js';

/**
 * The webhooks' delivery log and redelivery (issue 17): the gateway on a nats-server of this file's own
 * that gives it the NATS user `npm start` gives it, real HTTP receivers on 127.0.0.1, and events
 * published on the bus as inventory's outbox would. An event is dead-lettered after 4 attempts, with
 * backoff from 250 ms (so a `failed` row is there long enough to be seen); each log keeps 20 events.
 */
let t: TestEnv;
let s: Stack;
let dir: string;
let nats: NatsServerHandle;
let bus: Bus;
const receivers: WebhookReceiver[] = [];
const keep = 20;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-webhook-log-'));
  t = await createTestEnv();
  const creds = natsCredentials(join(dir, 'credentials.json'));
  nats = await startNatsServer({
    dir: join(dir, 'nats'),
    port: await pickPort(4690),
    log: () => undefined,
    authorization: natsAuthorization(creds, t.prefix),
  });
  t.env.NATS_URL = natsUrlFor(nats.url, 'admin', creds);
  s = await startStack(
    t,
    ['gateway'],
    {
      CROWBAR_WEBHOOK_ATTEMPTS: '4',
      CROWBAR_WEBHOOK_BACKOFF_MS: '250',
      CROWBAR_WEBHOOK_BACKOFF_MAX_MS: '1000',
      CROWBAR_WEBHOOK_TIMEOUT_MS: '2000',
      CROWBAR_WEBHOOK_POLL_MS: '200',
      CROWBAR_WEBHOOK_LOG_KEEP: String(keep),
    },
    (name) => ({ NATS_URL: natsUrlFor(nats.url, name, creds) }),
  );
  bus = await Bus.connect({
    url: natsUrlFor(nats.url, 'admin', creds),
    prefix: t.prefix,
    source: 'test',
    log: createLogger('t', { level: 'silent' }),
  });
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await bus?.close();
  for (const r of receivers) await r.close();
  await nats?.stop();
  await t?.cleanup().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const api = () => `http://127.0.0.1:${s.services.get('gateway')!.detail().port}/api/v2`;
async function call(method: string, path: string, token = testAdminToken) {
  const r = await fetch(`${api()}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as any };
}
const receiver = async () => {
  const r = await WebhookReceiver.start();
  receivers.push(r);
  return r;
};
async function createHook(url: string): Promise<{ id: number; secret: string }> {
  const r = await fetch(`${api()}/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${testAdminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url, filter: 'node.changed' }),
  });
  expect(r.status).toBe(201);
  return (await r.json()) as { id: number; secret: string };
}
const nodeName = inventoryEvents.nodeChanged.example.node.name;
/** Publishes a node.changed event that says `reason`; answers its stream sequence. */
async function publish(reason: string): Promise<number> {
  await bus.publish(inventoryEvents.nodeChanged, {
    node: { ...inventoryEvents.nodeChanged.example.node, id: 7 },
    changed: ['alive'],
    reason,
  });
  // Published one at a time, so the last node.changed in the stream is this one.
  const m = await bus.jsm.streams.getMessage(streamName(t.prefix, 'EVENTS'), {
    last_by_subj: `${t.prefix}.evt.node.changed.v1`,
  });
  expect(reasonOf(m!.string())).toBe(reason);
  return m!.seq;
}
const reasonOf = (body: string) => (JSON.parse(body) as { data: { reason?: string } }).data.reason ?? '';
const reasons = (r: WebhookReceiver, tag: string) =>
  r
    .accepted()
    .map((x) => reasonOf(x.body))
    .filter((x) => x.startsWith(tag));
const log = async (hook: number, query = '') => {
  const r = await call('GET', `/webhooks/${hook}/deliveries${query}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as { deliveries: any[]; next: string | null };
};
const row = async (hook: number, seq: number) =>
  (await log(hook, '?limit=1000')).deliveries.find((d) => d.seq === seq);

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
      node: nodeName,
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

  it('redelivers a dead-lettered event with the same webhook-id and a signature that verifies', {
    timeout: 30_000,
  }, async () => {
    const original = rec.got.find((x) => x.seq === seqs.poison)!;
    rec.respond = () => 200;
    const before = rec.got.length;
    const r = await call('POST', `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.poison}/redeliver`);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({ id: `${hook.id}-${seqs.poison}`, redeliveries: 1 });
    const again = (await until('the receiver got it again', () =>
      rec.got.slice(before).find((x) => x.seq === seqs.poison),
    ))!;
    expect(again.status).toBe(200);
    expect(again.headers['webhook-id']).toBe(`${hook.id}-${seqs.poison}`);
    expect(again.headers['x-crowbar-attempt']).toBe('5');
    expect(again.body).toBe(original.body);
    expect(signatureProblem(hook.secret, again)).toBeNull();
    const after = await until('the log says delivered', async () => {
      const d = await row(hook.id, seqs.poison!);
      return d?.status === 'delivered' ? d : null;
    });
    expect(after).toMatchObject({ attempts: 5, redeliveries: 1, httpStatus: 200 });
    expect(after.deliveredAt).not.toBeNull();

    // A delivered one may be sent again too (by its bare sequence); a receiver de-duplicates on the id.
    const n = rec.got.length;
    expect((await call('POST', `/webhooks/${hook.id}/deliveries/${seqs.after1}/redeliver`)).status).toBe(202);
    const twice = (await until('sent again', () => rec.got.slice(n).find((x) => x.seq === seqs.after1)))!;
    const first = rec.got.find((x) => x.seq === seqs.after1)!;
    expect(twice.headers['webhook-id']).toBe(first.headers['webhook-id']);
    expect(signatureProblem(hook.secret, twice)).toBeNull();
    const seen = new Set(rec.accepted().map((x: Received) => x.headers['webhook-id']));
    expect(seen.size).toBe(new Set(rec.got.map((x) => x.seq)).size);
  });

  it('a redelivery that keeps failing is dead-lettered again, and never holds back the stream', {
    timeout: 30_000,
  }, async () => {
    rec.respond = (_n, body) => (reasonOf(body) === 'log-after-2' ? 500 : 200);
    const r = await call('POST', `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.after2}/redeliver`);
    expect(r.status).toBe(202);
    // While the redelivery fails and waits, new events are delivered.
    const next = await publish('log-meanwhile');
    await until('the new event arrived', () => reasons(rec, 'log-meanwhile').length === 1);
    const dead = await until('the redelivery gave up', async () => {
      const d = await row(hook.id, seqs.after2!);
      return d?.status === 'dead-lettered' ? d : null;
    });
    expect(dead).toMatchObject({
      attempts: 5,
      redeliveries: 1,
      httpStatus: 500,
      error: 'redelivery gave up after 4 attempts: HTTP 500: not now',
    });
    expect((await row(hook.id, next))?.status).toBe('delivered');
  });

  it('refuses bad ids, cursors and filters with a 4xx naming the field; read-only lists but cannot redeliver', async () => {
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
    for (const [delivery, status, field, says] of [
      ['abc', 422, 'delivery', 'delivery must be'],
      ['0', 422, 'delivery', 'delivery must be'],
      [`${hook.id + 1}-${seqs.poison}`, 404, 'delivery', `is not webhook ${hook.id}'s`],
      [`${hook.id}-999999`, 404, 'delivery', `webhook ${hook.id} has no delivery ${hook.id}-999999`],
    ] as const) {
      const r = await call('POST', `/webhooks/${hook.id}/deliveries/${delivery}/redeliver`);
      expect([r.status, r.body.field], delivery).toEqual([status, field]);
      expect(r.body.message).toContain(says);
    }
    const noHook = await call('POST', '/webhooks/999/deliveries/999-1/redeliver');
    expect([noHook.status, noHook.body.field, noHook.body.message]).toEqual([404, 'id', 'no webhook 999']);

    const listed = await call('GET', `/webhooks/${hook.id}/deliveries`, testReadOnlyToken);
    expect(listed.status).toBe(200);
    expect(listed.body.deliveries.length).toBeGreaterThan(0);
    const before = rec.got.length;
    const ro = await call(
      'POST',
      `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.flaky}/redeliver`,
      testReadOnlyToken,
    );
    expect(ro.status).toBe(403);
    expect((await row(hook.id, seqs.flaky!)).redeliveries).toBe(0);
    // Nothing was sent for it: a redelivery asked afterwards is the only one that arrives.
    expect((await call('POST', `/webhooks/${hook.id}/deliveries/${seqs.flaky}/redeliver`)).status).toBe(202);
    await until('the admin redelivery arrived', () =>
      rec.got.slice(before).some((x) => x.seq === seqs.flaky),
    );
    expect(rec.got.slice(before).filter((x) => x.seq === seqs.flaky)).toHaveLength(1);
  });

  it('an event the stream no longer has is a 404 naming the delivery', async () => {
    const stream = streamName(t.prefix, 'EVENTS');
    // Drops every event up to the flaky one (included) from EVENTS, as its 7 days' retention would.
    await bus.jsm.streams.purge(stream, { seq: seqs.flaky! + 1 });
    const r = await call('POST', `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.flaky}/redeliver`);
    expect([r.status, r.body.field]).toEqual([404, 'delivery']);
    expect(r.body.message).toBe(
      `event ${seqs.flaky} of delivery ${hook.id}-${seqs.flaky} is no longer in the EVENTS stream (it keeps events 7 days)`,
    );
    // A later event, still in the stream, is sent again as before.
    expect((await call('POST', `/webhooks/${hook.id}/deliveries/${seqs.after1}/redeliver`)).status).toBe(202);
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
    const db = new pg.Client({ connectionString: t.databaseUrl });
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
    const natsLog = readFileSync(join(dir, 'nats', 'nats-server.log'), 'utf8');
    expect(natsLog.match(/(Publish|Subscription) Violation[^\n]*/g) ?? []).toEqual([]);
  });
});

const run = (args: string[]) =>
  runCrowbar(args, {
    HOME: dir,
    CROWBAR_CONFIG: join(dir, 'cli.json'),
    CROWBAR_ENDPOINT: api().replace(/\/api\/v2$/, ''),
    CROWBAR_KEY: testAdminToken,
  });
async function cli(args: string[]) {
  const r = await run(args);
  expect([r.code, r.stderr]).toEqual([0, '']);
  return JSON.parse(r.stdout);
}
