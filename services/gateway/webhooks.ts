import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Bus } from '../../shared/bus/bus.js';
import { streamName } from '../../shared/bus/streams.js';
import { subjectMatches } from '../../shared/bus/subjects.js';
import type { Clock } from '../../shared/clock.js';
import { UnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { DeliveryStatus, WebhookStore, WebhookTarget } from './db/webhooks.js';
import { patternSubject } from './routes/events.js';
import { backoffMs, type DeliveryResult, eventFacts, postDelivery } from './webhooks-delivery.js';

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
 */
export interface WebhookOptions {
  /** Attempts at one event before it is dead-lettered (and at one redelivery). */
  attempts: number;
  /** First retry delay; doubled per failure up to `backoffMaxMs`, with jitter. */
  backoffMs: number;
  backoffMaxMs: number;
  /** How long a receiver has to answer. */
  timeoutMs: number;
  /** How often each gateway looks for webhooks created, deleted or resumed elsewhere. */
  pollMs: number;
  /** Events each webhook's delivery log keeps (the newest, by stream sequence). */
  logKeep: number;
}

export const consumerName = (id: number) => `webhook-${id}`;
const ackWaitMs = (o: WebhookOptions) => Math.max(30_000, 2 * o.timeoutMs + 5_000);

const isConsumerGone = (err: unknown) =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound;

/** The webhooks' JetStream consumers: made at creation and at resume, deleted when failing or deleted. */
export class WebhookConsumers {
  readonly stream: string;
  constructor(
    private readonly bus: Bus,
    private readonly opts: WebhookOptions,
  ) {
    this.stream = streamName(bus.prefix, 'EVENTS');
  }

  /** One pattern is filtered by the server (nats-server 2.9 takes one filter subject); more, by us. */
  private filterSubject(patterns: string[]) {
    const only = patterns.length === 1 ? patterns[0]! : '>';
    return `${this.bus.prefix}.evt.${patternSubject(only)}`;
  }

  /** Makes the consumer anew: from the next event, or from stream sequence `from` (resume). */
  async create(id: number, patterns: string[], from: number | null): Promise<void> {
    this.bus.guard?.read('EVENTS');
    await this.remove(id);
    await this.bus.jsm.consumers.add(this.stream, {
      durable_name: consumerName(id),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ackWaitMs(this.opts)),
      max_ack_pending: 1,
      max_deliver: -1,
      filter_subject: this.filterSubject(patterns),
      ...(from === null
        ? { deliver_policy: DeliverPolicy.New }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }),
    });
  }

  async remove(id: number): Promise<void> {
    this.bus.guard?.read('EVENTS');
    await this.bus.jsm.consumers.delete(this.stream, consumerName(id)).catch((err: unknown) => {
      if (!isConsumerGone(err)) throw err;
    });
  }

  /** Events waiting (and the one in flight), and the last one delivered; null without a consumer. */
  async status(id: number): Promise<{ pending: number; lastDeliveredSeq: number } | null> {
    this.bus.guard?.read('EVENTS');
    const info = await this.bus.jsm.consumers.info(this.stream, consumerName(id)).catch((err: unknown) => {
      if (isConsumerGone(err)) return null;
      throw err;
    });
    if (!info) return null;
    return { pending: info.num_pending + info.num_ack_pending, lastDeliveredSeq: info.ack_floor.stream_seq };
  }
}

export interface WebhookDeps {
  bus: Bus;
  store: WebhookStore;
  consumers: WebhookConsumers;
  opts: WebhookOptions;
  log: Logger;
  clock: Clock;
  userAgent: string;
}

/** An event as it is sent: its stream sequence, type, the envelope as stored, and what the log shows. */
export interface EventToSend {
  seq: number;
  type: string;
  body: string;
  eventId: string | null;
  node: string | null;
}

/** Waits `ms`; false when `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The delivery log, written after every attempt. A write that fails is logged and dropped: the log is
 * for operators, and delivery does not wait on it. Each webhook's log is pruned to its newest
 * `logKeep` events every `logKeep / 10` (1 to 100) new events it gets from this process.
 */
class DeliveryLog {
  private readonly added = new Map<number, number>();
  constructor(private readonly deps: WebhookDeps) {}

  private get every() {
    return Math.max(1, Math.min(100, Math.floor(this.deps.opts.logKeep / 10)));
  }

  async record(
    webhookId: number,
    ev: EventToSend,
    status: DeliveryStatus,
    r: DeliveryResult,
    reason?: string,
  ): Promise<void> {
    const { store, opts, log } = this.deps;
    try {
      const { inserted } = await store.recordAttempt({
        webhookId,
        seq: ev.seq,
        eventId: ev.eventId,
        type: ev.type,
        node: ev.node,
        status,
        httpStatus: r.status,
        error: reason ?? (r.ok ? null : r.error),
        durationMs: r.durationMs,
      });
      if (!inserted) return;
      const n = (this.added.get(webhookId) ?? 0) + 1;
      this.added.set(webhookId, n);
      if (n % this.every === 0) await store.pruneDeliveries(webhookId, opts.logKeep);
    } catch (err) {
      log.warn({ err, webhook: webhookId, seq: ev.seq, status }, 'webhook delivery log not written');
    }
  }
}

/** One webhook's delivery loop in this process (every gateway runs one per active webhook). */
class WebhookWorker {
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

/** Runs a worker for every active webhook, and follows webhooks made, deleted and resumed anywhere. */
export class WebhookDispatcher {
  private readonly workers = new Map<number, WebhookWorker>();
  private readonly redeliveries = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private readonly deliveryLog: DeliveryLog;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: WebhookDeps) {
    this.deliveryLog = new DeliveryLog(deps);
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

  /**
   * The event at stream sequence `seq` in EVENTS, read with a short-lived ordered consumer (the
   * gateway's NATS user reads EVENTS through consumers only); null when the stream no longer has it.
   */
  async eventAt(seq: number): Promise<EventToSend | null> {
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
   * Sends `ev` to the webhook again, in the background of this process: up to `attempts` tries with the
   * same backoff, each logged on the event's row (attempt numbers go on from `attemptsSoFar`). Out of
   * band: it does not wait for, or hold back, the webhook's stream deliveries.
   */
  redeliver(target: WebhookTarget, ev: EventToSend, attemptsSoFar: number): void {
    if (this.stopped) throw new UnavailableError('this gateway is stopping; ask another for the redelivery');
    const job: Promise<void> = this.runRedelivery(target, ev, attemptsSoFar)
      .catch((err: unknown) =>
        this.deps.log.warn({ err, webhook: target.id, seq: ev.seq }, 'webhook redelivery stopped'),
      )
      .finally(() => this.redeliveries.delete(job));
    this.redeliveries.add(job);
  }

  private async runRedelivery(target: WebhookTarget, ev: EventToSend, attemptsSoFar: number): Promise<void> {
    const { opts, store } = this.deps;
    const log = this.deps.log.child({ webhook: target.id, seq: ev.seq });
    for (let tries = 1; ; tries++) {
      const r = await postDelivery(
        { ...target, webhookId: target.id, ...ev, attempt: attemptsSoFar + tries },
        { timeoutMs: opts.timeoutMs, userAgent: this.deps.userAgent, now: () => this.deps.clock.now() },
      );
      if (r.ok) {
        await this.deliveryLog.record(target.id, ev, 'delivered', r);
        log.info({ status: r.status }, 'webhook redelivered');
        return;
      }
      if (tries >= opts.attempts) {
        const reason = `redelivery gave up after ${tries} attempts: ${r.error}`;
        await this.deliveryLog.record(target.id, ev, 'dead-lettered', r, reason);
        log.warn({ error: r.error }, 'webhook redelivery dead-lettered');
        return;
      }
      await this.deliveryLog.record(target.id, ev, 'failed', r);
      if (!(await sleep(backoffMs(tries, opts.backoffMs, opts.backoffMaxMs), this.stopping.signal))) return;
      // Deleted meanwhile: nothing more to send.
      if (
        !(await store.get(target.id).then(
          () => true,
          () => false,
        ))
      )
        return;
    }
  }

  /** Lets every delivery in flight finish (and be acknowledged) before the process lets go of NATS. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    await Promise.all([...this.redeliveries]);
    this.workers.clear();
  }
}
