import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Bus } from '../../shared/bus/bus.js';
import { streamName } from '../../shared/bus/streams.js';
import { patternSubject } from './routes/events.js';

/** How webhooks are delivered: the gateway's `CROWBAR_WEBHOOK_*` settings. */
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
export const ackWaitMs = (o: WebhookOptions) => Math.max(30_000, 2 * o.timeoutMs + 5_000);

export const isConsumerGone = (err: unknown) =>
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
