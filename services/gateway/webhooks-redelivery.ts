import { DeliverPolicy } from '@nats-io/jetstream';
import { UnavailableError } from '../../shared/errors.js';
import type { DeliveryRow, WebhookTarget } from './db/webhooks.js';
import { backoffMs, deliveryId, eventFacts, postDelivery } from './webhooks-delivery.js';
import { type DeliveryLog, type EventToSend, sleep, type WebhookDeps } from './webhooks-log.js';

/** How one redelivery ended: `stopped` with the gateway, `gone` with its webhook. */
type Outcome = 'delivered' | 'dead-lettered' | 'stopped' | 'gone';

/** What a redelivery of every dead-lettered event of a webhook did (delivery ids, in event order). */
export interface BulkRedelivery {
  webhook: number;
  queued: number;
  /** Queued, in the order they are sent. */
  deliveries: string[];
  /** Dead-lettered, but the EVENTS stream no longer has the event: not queued. */
  missing: string[];
  /** Dead-lettered, and already queued here by an earlier bulk redelivery: not queued twice. */
  inFlight: string[];
}

/** Pages of the log read at a time when collecting a webhook's dead letters. */
const pageSize = 1000;
/** Events looked up in the stream at once (each with a short-lived consumer). */
const lookups = 8;

/**
 * The redeliveries an operator asked of this gateway process, sent in its background: each event up to
 * `attempts` tries with the usual backoff, every attempt logged on the event's row (attempt numbers go
 * on from the row's). Out of band: they do not wait for, or hold back, the webhook's stream deliveries.
 * A bulk redelivery sends its events one after the other in stream order; one given up on again does
 * not stop the ones after it (as in the stream). They end when the gateway stops or the webhook goes.
 */
export class Redeliveries {
  private readonly jobs = new Set<Promise<void>>();
  /** The delivery ids a bulk redelivery of this process has queued and not finished. */
  private readonly queued = new Set<string>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly deps: WebhookDeps,
    private readonly deliveryLog: DeliveryLog,
  ) {}

  /**
   * The event at stream sequence `seq` in EVENTS, read with a short-lived ordered consumer (the
   * gateway's NATS user reads EVENTS through consumers only); null when the stream no longer has it.
   */
  private async eventAt(seq: number): Promise<EventToSend | null> {
    const { bus } = this.deps;
    bus.guard?.read('EVENTS');
    const evt = `${bus.prefix}.evt.`;
    const consumer = await bus.js.consumers
      .get(this.deps.consumers.stream, {
        filter_subjects: `${evt}>`,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: seq,
      })
      .catch((cause: unknown) => {
        throw new UnavailableError('the EVENTS stream is unavailable: JetStream did not answer', { cause });
      });
    try {
      const m = await consumer.next({ expires: 2_000 });
      if (!m || m.seq !== seq) return null;
      const body = m.string();
      return { seq, type: m.subject.slice(evt.length), body, ...eventFacts(body) };
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  /**
   * The event a row of the log is about, from the stream; null when the stream no longer has it. A
   * stream made anew numbers its events from 1 again: the sequence must still be the same event.
   */
  async eventOf(row: DeliveryRow): Promise<EventToSend | null> {
    const ev = await this.eventAt(row.seq);
    if (!ev || ev.type !== row.type || (row.eventId !== null && ev.eventId !== row.eventId)) return null;
    return ev;
  }

  /** Sends `ev` to the webhook again (`attemptsSoFar`: what its row counts). */
  redeliver(target: WebhookTarget, ev: EventToSend, attemptsSoFar: number): void {
    this.run(target.id, ev.seq, async () => {
      await this.send(target, ev, attemptsSoFar);
    });
  }

  /**
   * Queues every dead-lettered event in the webhook's log for redelivery, oldest first, but those the
   * stream no longer has and those already queued here; each row counts the redelivery at once.
   */
  async redeliverDead(target: WebhookTarget): Promise<BulkRedelivery> {
    this.refuseWhenStopping();
    const { store } = this.deps;
    const rows: DeliveryRow[] = [];
    let before: number | undefined;
    do {
      const page = await store.listDeliveries({
        webhookId: target.id,
        status: 'dead-lettered',
        limit: pageSize,
        ...(before !== undefined ? { before } : {}),
      });
      rows.push(...page.deliveries);
      before = page.next === null ? undefined : Number(page.next);
    } while (before !== undefined);
    rows.reverse();
    const inFlight = rows.filter((r) => this.queued.has(r.id));
    const candidates = rows.filter((r) => !this.queued.has(r.id));
    // Held from here, so that a bulk redelivery asked meanwhile does not queue them too.
    for (const r of candidates) this.queued.add(r.id);
    const missing: string[] = [];
    const list: { ev: EventToSend; attemptsSoFar: number }[] = [];
    try {
      const events = await this.eventsOf(candidates);
      for (const [i, row] of candidates.entries()) {
        const ev = events[i];
        const marked = ev ? await store.markRedelivery(target.id, row.seq) : null;
        if (!ev || !marked) missing.push(row.id);
        else list.push({ ev, attemptsSoFar: marked.attempts });
      }
      for (const id of missing) this.queued.delete(id);
      if (list.length > 0) this.runAll(target, list);
    } catch (err) {
      for (const r of candidates) this.queued.delete(r.id);
      throw err;
    }
    this.deps.log.info(
      { webhook: target.id, queued: list.length, missing: missing.length, inFlight: inFlight.length },
      'webhook dead letters queued for redelivery',
    );
    return {
      webhook: target.id,
      queued: list.length,
      deliveries: list.map((x) => deliveryId(target.id, x.ev.seq)),
      missing,
      inFlight: inFlight.map((r) => r.id),
    };
  }

  /** Ends the redeliveries in flight (each after its current attempt) and waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all([...this.jobs]);
  }

  private refuseWhenStopping(): void {
    if (this.stopping.signal.aborted)
      throw new UnavailableError('this gateway is stopping; ask another for the redelivery');
  }

  /** The events of `rows` (null: not in the stream), a few looked up at a time. */
  private async eventsOf(rows: DeliveryRow[]): Promise<(EventToSend | null)[]> {
    const out: (EventToSend | null)[] = new Array(rows.length).fill(null);
    let next = 0;
    const lookup = async () => {
      while (next < rows.length) {
        const i = next++;
        out[i] = await this.eventOf(rows[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(lookups, rows.length) }, lookup));
    return out;
  }

  /**
   * Sends `list` (its ids held in `queued`, each let go once sent) one after the other; an event given
   * up on does not stop the ones after it.
   */
  private runAll(target: WebhookTarget, list: { ev: EventToSend; attemptsSoFar: number }[]): void {
    const ids = list.map((x) => deliveryId(target.id, x.ev.seq));
    this.run(target.id, null, async () => {
      try {
        for (const [i, { ev, attemptsSoFar }] of list.entries()) {
          // The gateway is stopping, or the webhook was deleted: the rest stay as they are.
          if (this.stopping.signal.aborted || (i > 0 && !(await this.exists(target.id)))) return;
          const outcome = await this.send(target, ev, attemptsSoFar);
          this.queued.delete(ids[i]!);
          if (outcome === 'stopped' || outcome === 'gone') return;
        }
      } finally {
        for (const id of ids) this.queued.delete(id);
      }
    });
  }

  private run(webhook: number, seq: number | null, job: () => Promise<void>): void {
    this.refuseWhenStopping();
    const p: Promise<void> = job()
      .catch((err: unknown) => this.deps.log.warn({ err, webhook, seq }, 'webhook redelivery stopped'))
      .finally(() => this.jobs.delete(p));
    this.jobs.add(p);
  }

  private exists(id: number): Promise<boolean> {
    return this.deps.store.get(id).then(
      () => true,
      () => false,
    );
  }

  private async send(target: WebhookTarget, ev: EventToSend, attemptsSoFar: number): Promise<Outcome> {
    const { opts } = this.deps;
    const log = this.deps.log.child({ webhook: target.id, seq: ev.seq });
    for (let tries = 1; ; tries++) {
      const r = await postDelivery(
        { ...target, webhookId: target.id, ...ev, attempt: attemptsSoFar + tries },
        { timeoutMs: opts.timeoutMs, userAgent: this.deps.userAgent, now: () => this.deps.clock.now() },
      );
      if (r.ok) {
        await this.deliveryLog.record(target.id, ev, 'delivered', r);
        log.info({ status: r.status }, 'webhook redelivered');
        return 'delivered';
      }
      if (tries >= opts.attempts) {
        const reason = `redelivery gave up after ${tries} attempts: ${r.error}`;
        await this.deliveryLog.record(target.id, ev, 'dead-lettered', r, reason);
        log.warn({ error: r.error }, 'webhook redelivery dead-lettered');
        return 'dead-lettered';
      }
      await this.deliveryLog.record(target.id, ev, 'failed', r);
      const wait = backoffMs(tries, opts.backoffMs, opts.backoffMaxMs);
      if (!(await sleep(wait, this.stopping.signal))) return 'stopped';
      // Deleted meanwhile: nothing more to send.
      if (!(await this.exists(target.id))) return 'gone';
    }
  }
}
