import type { DeliveryRow, WebhookTarget } from './db/webhooks.js';
import { DeliveryLog, type EventToSend, type WebhookDeps } from './webhooks-log.js';
import { type BulkRedelivery, Redeliveries } from './webhooks-redelivery.js';
import { WebhookWorker } from './webhooks-worker.js';

/**
 * Webhook deliveries. Each webhook has one durable pull consumer on EVENTS (`webhook-<id>`) with at most
 * one unacknowledged message (`max_ack_pending: 1`), shared by every gateway process: each process pulls
 * from it, JetStream hands each event to one of them, and the next event only after the last one was
 * acknowledged — so events reach the receiver in stream order, once each, whichever gateway sends them.
 * An event is acknowledged after the receiver's 2xx; the process holding it retries with backoff (telling
 * JetStream it is still working), and a process that dies holding one lets JetStream hand it to another
 * after `ack_wait` (at least once: the receiver may see that event twice, with the same delivery id).
 * After `attempts` failures at one event it is dead-lettered: its row in the delivery log says so and
 * why, the event is acknowledged, and the next one is tried — one receiver's bad event never holds back
 * the events after it. An operator may have any logged event sent again (`redeliver`), with the same
 * delivery id. The webhook is `failing` only when its consumer is gone (resume makes it again).
 *
 * Here: the dispatcher, which runs the workers. `webhooks-consumers.ts` makes and removes the consumers,
 * `webhooks-worker.ts` is one webhook's delivery loop, `webhooks-log.ts` writes the delivery log,
 * `webhooks-redelivery.ts` sends logged events again, `webhooks-delivery.ts` signs and POSTs one.
 */

/** Runs a worker for every active webhook, and follows webhooks made, deleted and resumed anywhere. */
export class WebhookDispatcher {
  private readonly workers = new Map<number, WebhookWorker>();
  private readonly redeliveries: Redeliveries;
  private readonly deliveryLog: DeliveryLog;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: WebhookDeps) {
    this.deliveryLog = new DeliveryLog(deps);
    this.redeliveries = new Redeliveries(deps, this.deliveryLog);
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.deps.opts.pollMs);
    this.timer.unref();
  }

  get size(): number {
    return this.workers.size;
  }

  /** Looks at the table now (after a change made through this gateway). */
  refresh(): Promise<void> {
    this.polling ??= this.reconcile().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const targets = await this.deps.store.targets().catch((err: unknown) => {
      this.deps.log.warn({ err }, 'webhooks not read');
      return null;
    });
    if (!targets || this.stopped) return;
    const active = new Map(targets.filter((t) => t.state === 'active').map((t) => [t.id, t]));
    const gone = [...this.workers].filter(([id, w]) => w.finished || !active.has(id));
    for (const [id] of gone) this.workers.delete(id);
    await Promise.all(gone.map(([, w]) => w.stop()));
    if (this.stopped) return;
    for (const [id, t] of active)
      if (!this.workers.has(id)) this.workers.set(id, new WebhookWorker(t, this.deps, this.deliveryLog));
  }

  /** The event a row of the log is about, from the stream; null when the stream no longer has it. */
  eventOf(row: DeliveryRow): Promise<EventToSend | null> {
    return this.redeliveries.eventOf(row);
  }

  /** Sends `ev` to the webhook again, in the background of this process (see `Redeliveries`). */
  redeliver(target: WebhookTarget, ev: EventToSend, attemptsSoFar: number): void {
    this.redeliveries.redeliver(target, ev, attemptsSoFar);
  }

  /** Queues every dead-lettered event of the webhook for redelivery here, in stream order. */
  redeliverDead(target: WebhookTarget): Promise<BulkRedelivery> {
    return this.redeliveries.redeliverDead(target);
  }

  /** Lets every delivery in flight finish (and be acknowledged) before the process lets go of NATS. */
  async stop(): Promise<void> {
    this.stopped = true;
    const redeliveries = this.redeliveries.stop();
    clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    await redeliveries;
    this.workers.clear();
  }
}

export { consumerName, WebhookConsumers, type WebhookOptions } from './webhooks-consumers.js';
export type { EventToSend, WebhookDeps } from './webhooks-log.js';
export type { BulkRedelivery } from './webhooks-redelivery.js';
