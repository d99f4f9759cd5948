import { describe, expect, it } from 'vitest';
import { until } from './helpers/inventory.js';
import { type Received, signatureProblem } from './helpers/webhook-receiver.js';
import { useWebhookStack } from './helpers/webhook-stack.js';

/**
 * Issue 17: a receiver that is down for 30 s gets every event published meanwhile once it is back — with
 * the gateway's DEFAULT retry settings (10 attempts, backoff from 1 s doubling to 60 s with ±20 % jitter;
 * the other webhook tests shorten them). The receiver is a real HTTP server on 127.0.0.1: from the first
 * attempt it answers 503 for 10 s, then its server is closed (connections refused) until 30 s after the
 * first attempt, then it listens again on the same port and answers 200. With the default schedule the
 * first event's attempts come at about 0, 1, 3, 7, 15, 31 and 63 s (each wait ±20 %), so the attempt
 * that gets through comes at most about 68 s after the first, with 3 of the 10 attempts to spare.
 */
// No CROWBAR_WEBHOOK_* at all: the gateway runs with its defaults.
const h = useWebhookStack();
const { call } = h;
const nodes = ['n1', 'n2', 'n3', 'n4'].map((n, i) => ({ name: `${n}.outage.example.com`, id: 100 + i }));
const pace = (ms: number) => new Promise((r) => setTimeout(r, ms));
const envelope = (r: Received) =>
  JSON.parse(r.body) as { id: string; data: { node: { name: string }; reason: string } };

describe('webhooks: a receiver down for 30 s, default retry settings', () => {
  it('gets every event once it is back: each webhook-id once after de-duplication, in order per node, none dead-lettered', {
    timeout: 150_000,
  }, async () => {
    const receiver = await h.receiver();
    const downFor = { refusingAfter: 10_000, backAfter: 30_000 };
    let firstAttempt = 0;
    let back = 0;
    /** When each request the receiver got came (by its place in `got`). */
    const at: number[] = [];
    receiver.respond = () => {
      at.push(Date.now());
      if (firstAttempt === 0) {
        // The outage is measured from the first attempt: 503 for 10 s, then nothing listens until 30 s.
        firstAttempt = Date.now();
        setTimeout(() => void receiver.close(), downFor.refusingAfter);
        setTimeout(() => {
          back = Date.now();
          void receiver.listen();
        }, downFor.backAfter);
      }
      return back === 0 ? 503 : 200;
    };
    const hook = await h.createHook(receiver.url, 'node.changed');

    // Five rounds of one event per node, 4 s apart: 20 events, all published while the receiver is down.
    const published: { id: string; node: string; at: number }[] = [];
    for (let round = 0; round < 5; round++) {
      if (round > 0) await pace(4_000);
      for (const node of nodes) {
        const env = await h.publish(`outage ${node.name} ${round}`, node);
        published.push({ id: env.id, node: node.name, at: Date.now() });
      }
      if (round === 0) await until('the first attempt', () => firstAttempt > 0, 10_000);
    }
    expect(published.every((p) => p.at < firstAttempt + downFor.backAfter)).toBe(true);

    await until(
      'every event accepted',
      () => new Set(receiver.accepted().map((r) => envelope(r).id)).size === published.length,
      90_000,
      200,
    );
    const accepted = receiver.accepted();
    // It was down from the first attempt until 30 s later: nothing was accepted before then.
    const acceptedAt = receiver.got.flatMap((r, i) => (r.status === 200 ? [at[i]!] : []));
    expect(Math.min(...acceptedAt) - firstAttempt).toBeGreaterThanOrEqual(downFor.backAfter);
    expect(
      receiver.got.filter((r, i) => r.status === 503 && at[i]! >= firstAttempt + downFor.backAfter),
    ).toEqual([]);

    // The first event's attempts while it answered 503 follow the default backoff (1 s, 2 s, 4 s ±20 %).
    const headSeq = receiver.got[0]!.seq;
    expect(accepted[0]!.seq).toBe(headSeq);
    const answered503 = receiver.got.flatMap((r, i) =>
      r.seq === headSeq && r.status === 503 ? [{ r, at: at[i]! }] : [],
    );
    expect(answered503.map((x) => x.r.headers['x-crowbar-attempt'])).toEqual(['1', '2', '3', '4']);
    for (let i = 1; i < answered503.length; i++) {
      const gap = answered503[i]!.at - answered503[i - 1]!.at;
      const wait = 1000 * 2 ** (i - 1);
      expect(gap).toBeGreaterThanOrEqual(0.8 * wait);
      // Plus the time the attempt and its log writes take.
      expect(gap).toBeLessThanOrEqual(1.2 * wait + 1_000);
    }
    // Attempts 5 (and 6, when it came before 30 s) were refused; 6 or 7 got through, of the 10 allowed.
    const through = Number(accepted[0]!.headers['x-crowbar-attempt']);
    expect(through).toBeGreaterThanOrEqual(6);
    expect(through).toBeLessThanOrEqual(7);

    // De-duplicated on webhook-id (first copy kept): every event once, under one id each.
    const firstCopies = new Map<string, Received>();
    for (const r of accepted)
      if (!firstCopies.has(String(r.headers['webhook-id'])))
        firstCopies.set(String(r.headers['webhook-id']), r);
    const byEvent = new Map([...firstCopies.values()].map((r) => [envelope(r).id, r]));
    expect(firstCopies.size).toBe(published.length);
    expect([...byEvent.keys()].sort()).toEqual(published.map((p) => p.id).sort());
    for (const r of firstCopies.values()) {
      expect(r.headers['webhook-id']).toBe(`${hook.id}-${r.seq}`);
      expect(signatureProblem(hook.secret, r)).toBeNull();
    }
    // In order per node: each node's events arrive as they were published (and the stream's order).
    const deduped = [...firstCopies.values()];
    for (const node of nodes) {
      const got = deduped.filter((r) => envelope(r).data.node.name === node.name).map((r) => envelope(r).id);
      expect(got, node.name).toEqual(published.filter((p) => p.node === node.name).map((p) => p.id));
    }
    expect(deduped.map((r) => r.seq)).toEqual(deduped.map((r) => r.seq).sort((a, b) => a - b));

    // Nothing dead-lettered: the webhook and its log agree (once the last acknowledgement is in).
    const w = (await until('the last event acknowledged', async () => {
      const r = await call('GET', `/webhooks/${hook.id}`);
      return r.body.pending === 0 ? r : null;
    }))!;
    expect(w.body).toMatchObject({ state: 'active', failures: 0, deadLettered: 0 });
    const logged = (await until('every event logged delivered', async () => {
      const rows = (await call('GET', `/webhooks/${hook.id}/deliveries?limit=1000`)).body.deliveries as any[];
      return rows.length === published.length && rows.every((d) => d.status === 'delivered') ? rows : null;
    }))!;
    const dead = await call('GET', `/webhooks/${hook.id}/deliveries?status=dead-lettered`);
    expect(dead.body.deliveries).toEqual([]);
    const headRow = logged.find((d) => d.seq === headSeq);
    expect(headRow).toMatchObject({ attempts: through, error: 'connection refused', httpStatus: 200 });
  });

  it('ran with the NATS permissions npm start gives the gateway: nothing refused', () => {
    expect(h.natsViolations()).toEqual([]);
  });
});
