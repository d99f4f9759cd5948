import { beforeAll, describe, expect, it } from 'vitest';
import { streamName } from '../shared/bus/streams.js';
import { until } from './helpers/inventory.js';
import { testReadOnlyToken } from './helpers/stack.js';
import { type Received, signatureProblem, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { deliveryLogSettings, reasonOf, useWebhookStack } from './helpers/webhook-stack.js';

/**
 * Redelivering webhook deliveries (issue 17), one by one and every dead-lettered one at once, by the API
 * and the CLI: the gateway on a nats-server of this file's own that gives it the NATS user `npm start`
 * gives it (test/helpers/webhook-stack.ts), real HTTP receivers on 127.0.0.1, and events published on the
 * bus as inventory's outbox would. The settings are the delivery log's tests' (`deliveryLogSettings`):
 * dead-lettered after 4 attempts, backoff from 250 ms, each log keeps 20 events.
 */
const h = useWebhookStack(deliveryLogSettings);
const { call, receiver, createHook, reasons, cli, run } = h;
const { publishSeq: publish, deliveryLog: log, deliveryRow: row } = h;

describe('webhooks: redelivering one event', () => {
  let hook: { id: number; secret: string };
  let rec: WebhookReceiver;
  const seqs: Record<string, number> = {};

  // A log as the delivery log's tests leave it: the first event delivered after a failed attempt, the
  // next one dead-lettered after the bound, the two after it delivered at once.
  beforeAll(async () => {
    rec = await receiver();
    rec.respond = (n, body) => (n === 1 || reasonOf(body) === 'log-poison' ? 503 : 200);
    hook = await createHook(rec.url);
    seqs.flaky = await publish('log-flaky');
    seqs.poison = await publish('log-poison');
    seqs.after1 = await publish('log-after-1');
    seqs.after2 = await publish('log-after-2');
    await until('the poison event dead-lettered, the others delivered', async () => {
      const rows = (await log(hook.id)).deliveries;
      return (
        rows.length === 4 &&
        rows.every((d) => d.status === (d.seq === seqs.poison ? 'dead-lettered' : 'delivered'))
      );
    });
    expect(rec.got.filter((x) => x.seq === seqs.flaky).map((x) => x.status)).toEqual([503, 200]);
    expect(rec.got.filter((x) => x.seq === seqs.after2)).toHaveLength(1);
  }, 30_000);

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

  it('refuses bad deliveries with a 4xx naming the field; read-only cannot redeliver', async () => {
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
    const before = rec.got.length;
    const ro = await call(
      'POST',
      `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.flaky}/redeliver`,
      undefined,
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
    const stream = streamName(h.t.prefix, 'EVENTS');
    // Drops every event up to the flaky one (included) from EVENTS, as its 7 days' retention would.
    await h.bus.jsm.streams.purge(stream, { seq: seqs.flaky! + 1 });
    const r = await call('POST', `/webhooks/${hook.id}/deliveries/${hook.id}-${seqs.flaky}/redeliver`);
    expect([r.status, r.body.field]).toEqual([404, 'delivery']);
    expect(r.body.message).toBe(
      `event ${seqs.flaky} of delivery ${hook.id}-${seqs.flaky} is no longer in the EVENTS stream (it keeps events 7 days)`,
    );
    // A later event, still in the stream, is sent again as before.
    expect((await call('POST', `/webhooks/${hook.id}/deliveries/${seqs.after1}/redeliver`)).status).toBe(202);
  });
});

describe('webhooks: redelivering every dead-lettered event', () => {
  it('queues each one, sends them one after the other in event order with their webhook-ids, skips what the stream lost', {
    timeout: 60_000,
  }, async () => {
    const r = await receiver();
    r.respond = (_n, body) => (reasonOf(body).startsWith('bulk-dead-') ? 503 : 200);
    const hook = await createHook(r.url);
    const dead: number[] = [];
    for (let i = 0; i < 4; i++) {
      dead.push(await publish(`bulk-dead-${i}`));
      await publish(`bulk-ok-${i}`);
    }
    await until(
      'four dead-lettered',
      async () => (await log(hook.id, '?status=dead-lettered')).deliveries.length === 4,
      40_000,
    );
    // The oldest one's event leaves EVENTS (as after its 7 days): it cannot be sent, and is reported.
    await h.bus.jsm.streams.purge(streamName(h.t.prefix, 'EVENTS'), { seq: dead[0]! + 1 });
    const ids = dead.map((seq) => `${hook.id}-${seq}`);
    // The first one sent fails while `hold` lasts: the others must wait for it (one after the other).
    let hold = true;
    r.respond = (_n, body) => (hold && reasonOf(body) === 'bulk-dead-1' ? 503 : 200);
    const before = r.got.length;
    const first = await call('POST', `/webhooks/${hook.id}/redeliver?status=dead-lettered`);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(first.body).toEqual({
      webhook: hook.id,
      queued: 3,
      deliveries: ids.slice(1),
      missing: [ids[0]],
      inFlight: [],
    });
    // Asked again while they are being sent: none is queued twice.
    const again = await call('POST', `/webhooks/${hook.id}/redeliver?status=dead-lettered`);
    await until('the held one was tried', () => r.got.slice(before).some((x) => x.seq === dead[1]));
    hold = false;
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ queued: 0, deliveries: [], missing: [ids[0]] });
    expect(again.body.inFlight).toEqual(expect.arrayContaining(ids.slice(2)));
    expect(ids.slice(1)).toEqual(expect.arrayContaining(again.body.inFlight));

    await until('the three arrived', () => r.accepted().filter((x) => dead.includes(x.seq)).length === 3);
    const sent = r.got.slice(before).filter((x) => dead.includes(x.seq));
    // In event order: the held one's failed attempts, its success, and only then the next ones.
    const held = sent.findIndex((x) => x.status === 200);
    expect(held).toBeGreaterThanOrEqual(1);
    expect(sent.slice(0, held).map((x) => [x.seq, x.status])).toEqual(Array(held).fill([dead[1], 503]));
    expect(sent.slice(held).map((x) => [x.seq, x.status])).toEqual([
      [dead[1], 200],
      [dead[2], 200],
      [dead[3], 200],
    ]);
    for (const x of sent) {
      expect(x.headers['webhook-id']).toBe(`${hook.id}-${x.seq}`);
      expect(signatureProblem(hook.secret, x)).toBeNull();
    }
    // Attempt numbers go on from the rows' 4: the held one's from 5, the others' 5.
    expect(sent.map((x) => x.headers['x-crowbar-attempt'])).toEqual([
      ...Array.from({ length: held + 1 }, (_, k) => String(5 + k)),
      '5',
      '5',
    ]);
    await until('the log says delivered', async () =>
      (await Promise.all(dead.slice(1).map((seq) => row(hook.id, seq)))).every(
        (d) => d.status === 'delivered',
      ),
    );
    expect((await row(hook.id, dead[3]!)).redeliveries).toBe(1);
    expect(await row(hook.id, dead[0]!)).toMatchObject({ status: 'dead-lettered', redeliveries: 0 });
    const after = await call('POST', `/webhooks/${hook.id}/redeliver?status=dead-lettered`);
    expect(after.body).toEqual({
      webhook: hook.id,
      queued: 0,
      deliveries: [],
      missing: [ids[0]],
      inFlight: [],
    });

    for (const [path, status, field] of [
      [`/webhooks/${hook.id}/redeliver`, 422, 'status'],
      [`/webhooks/${hook.id}/redeliver?status=failed`, 422, 'status'],
      [`/webhooks/${hook.id}/redeliver?status=dead-lettered&limit=3`, 422, 'limit'],
      ['/webhooks/x1/redeliver?status=dead-lettered', 422, 'id'],
      ['/webhooks/999/redeliver?status=dead-lettered', 404, 'id'],
    ] as const) {
      const bad = await call('POST', path);
      expect([bad.status, bad.body.field], path).toEqual([status, field]);
      expect(bad.body.message, path).toContain(status === 404 ? 'no webhook 999' : field);
    }
    const n = r.got.length;
    const ro = await call(
      'POST',
      `/webhooks/${hook.id}/redeliver?status=dead-lettered`,
      undefined,
      testReadOnlyToken,
    );
    expect(ro.status).toBe(403);
    // A purged event cannot be sent by anyone; an admin's bulk redelivery now sends nothing either.
    expect((await call('POST', `/webhooks/${hook.id}/redeliver?status=dead-lettered`)).body.queued).toBe(0);
    expect(r.got.slice(n).filter((x) => dead.includes(x.seq))).toEqual([]);
  });
});

describe('webhooks: redelivering by the CLI', () => {
  it('redelivers every dead-lettered event with --all-dead, and refuses a delivery with it', {
    timeout: 60_000,
  }, async () => {
    const r = await receiver();
    r.respond = (_n, body) => (reasonOf(body).startsWith('cli-dead-') ? 503 : 200);
    const hook = await createHook(r.url);
    const dead = [await publish('cli-dead-0'), await publish('cli-dead-1')];
    await until(
      'both dead-lettered',
      async () => (await log(hook.id, '?status=dead-lettered')).deliveries.length === 2,
      30_000,
    );
    r.respond = () => 200;
    const json = await cli(['webhooks', 'redeliver', String(hook.id), '--all-dead', '--format', 'json']);
    expect(json).toEqual({
      webhook: hook.id,
      queued: 2,
      deliveries: dead.map((seq) => `${hook.id}-${seq}`),
      missing: [],
      inFlight: [],
    });
    await until('both arrived', () => r.accepted().filter((x) => dead.includes(x.seq)).length === 2);
    expect(
      r
        .accepted()
        .map((x) => x.seq)
        .filter((seq) => dead.includes(seq)),
    ).toEqual(dead);
    await until(
      'nothing dead-lettered',
      async () => (await log(hook.id, '?status=dead-lettered')).deliveries.length === 0,
    );
    const table = await run(['webhooks', 'redeliver', String(hook.id), '--all-dead']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/queued\s*│\s*0/);
    expect(table.stderr).toContain('0 dead-lettered event(s) queued');
    for (const args of [[String(hook.id)], [String(hook.id), `${hook.id}-${dead[0]}`, '--all-dead']]) {
      const bad = await run(['webhooks', 'redeliver', ...args]);
      expect(bad.code, args.join(' ')).toBe(64);
      expect(bad.stderr).toContain('--all-dead');
    }
    const missing = await run(['webhooks', 'redeliver', '999', '--all-dead']);
    expect([missing.code, missing.stderr.trim()]).toEqual([4, 'crowbar: no webhook 999 (field id).']);
  });

  it('ran with the NATS permissions npm start gives the gateway: nothing refused', () => {
    expect(h.natsViolations()).toEqual([]);
  });
});
