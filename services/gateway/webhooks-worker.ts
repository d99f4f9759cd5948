import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { subjectMatches } from '../../shared/bus/subjects.js';
import type { Logger } from '../../shared/log.js';
import type { WebhookTarget } from './db/webhooks.js';
import { patternSubject } from './routes/events.js';
import { ackWaitMs, consumerName, isConsumerGone } from './webhooks-consumers.js';
import { backoffMs, eventFacts, postDelivery } from './webhooks-delivery.js';
import { type DeliveryLog, type EventToSend, sleep, type WebhookDeps } from './webhooks-log.js';

/** One webhook's delivery loop in this process (every gateway runs one per active webhook). */
export class WebhookWorker {
  private stopping = false;
  private readonly sleeps = new AbortController();
  private readonly log: Logger;
  private readonly wanted: (type: string) => boolean;
  /** This process recorded failures since the last success (the row's count needs a reset). */
  private failed = false;
  readonly done: Promise<void>;
  finished = false;

  constructor(
    private readonly target: WebhookTarget,
    private readonly deps: WebhookDeps,
    private readonly deliveryLog: DeliveryLog,
  ) {
    this.log = deps.log.child({ webhook: target.id });
    const patterns = target.filter.split(',');
    this.wanted =
      patterns.length === 1
        ? () => true
        : (type) => patterns.some((p) => subjectMatches(patternSubject(p), type));
    this.done = this.run().finally(() => {
      this.finished = true;
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.sleeps.abort();
    await this.done;
  }

  /** Waits `ms`; false when the worker is stopping. */
  private sleep(ms: number): Promise<boolean> {
    return sleep(ms, this.sleeps.signal);
  }

  private async run(): Promise<void> {
    const { bus, consumers } = this.deps;
    let consumer: Consumer | null = null;
    let warned = false;
    while (!this.stopping) {
      try {
        consumer ??= await bus.js.consumers.get(consumers.stream, consumerName(this.target.id));
        const m = await consumer.next({ expires: 2_000 });
        warned = false;
        if (!m) continue;
        if (this.stopping) {
          m.nak();
          break;
        }
        if ((await this.handle(m)) === 'stop') break;
      } catch (err) {
        consumer = null;
        if (this.stopping) break;
        if (isConsumerGone(err)) {
          await this.consumerGone();
          break;
        }
        if (!warned) this.log.warn({ err }, 'webhook consumer unavailable; trying again');
        warned = true;
        await this.sleep(1_000);
      }
    }
  }

  /** Deleted or failing elsewhere; or lost with the stream, which the row then says. */
  private async consumerGone(): Promise<void> {
    const row = await this.deps.store.get(this.target.id).catch(() => null);
    if (row?.state !== 'active') return;
    const error = `its JetStream consumer ${consumerName(row.id)} is gone (was the EVENTS stream made anew?); resume it to deliver new events`;
    this.log.error({ error }, 'webhook failing');
    await this.deps.store.markFailing(row.id, null, error).catch(() => undefined);
  }

  private async handle(m: JsMsg): Promise<'next' | 'stop'> {
    const { store, opts } = this.deps;
    const id = this.target.id;
    const type = m.subject.slice(`${this.deps.bus.prefix}.evt.`.length);
    if (!this.wanted(type)) {
      m.ack();
      return 'next';
    }
    const keepAlive = setInterval(() => m.working(), ackWaitMs(opts) / 3);
    try {
      let failures = m.redelivered ? (await store.get(id)).failures : 0;
      const body = m.string();
      const ev: EventToSend = { seq: m.seq, type, body, ...eventFacts(body) };
      for (;;) {
        const delivery = { ...this.target, webhookId: id, seq: m.seq, type, body, attempt: failures + 1 };
        const r = await postDelivery(delivery, {
          timeoutMs: opts.timeoutMs,
          userAgent: this.deps.userAgent,
          now: () => this.deps.clock.now(),
        });
        if (r.ok) {
          await m.ackAck().catch(() => m.ack());
          await this.deliveryLog.record(id, ev, 'delivered', r);
          if (this.failed || failures > 0) await store.resetFailures(id);
          this.failed = false;
          this.log.debug({ seq: m.seq, type, status: r.status }, 'webhook delivered');
          return 'next';
        }
        this.failed = true;
        const row = await store.recordFailure(id, m.seq, r.error);
        failures = row.failures;
        if (row.state === 'gone') {
          m.nak();
          return 'stop';
        }
        if (failures >= opts.attempts) {
          // Given up: logged with the reason, acknowledged, and the next event goes ahead.
          const reason = `gave up after ${failures} attempts: ${r.error}`;
          this.log.warn({ seq: m.seq, type, failures, error: r.error }, 'webhook delivery dead-lettered');
          await this.deliveryLog.record(id, ev, 'dead-lettered', r, reason);
          await store.deadLettered(id, reason);
          await m.ackAck().catch(() => m.ack());
          this.failed = false;
          return 'next';
        }
        await this.deliveryLog.record(id, ev, 'failed', r);
        const wait = backoffMs(failures, opts.backoffMs, opts.backoffMaxMs);
        this.log.info({ seq: m.seq, failures, error: r.error, retryInMs: wait }, 'webhook delivery failed');
        if (!(await this.sleep(wait))) {
          // Stopping: another gateway (or this one, restarted) takes the event at once.
          m.nak();
          return 'stop';
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
  }
}
