import { type ConsumerMessages, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import type { Bus } from '../../../shared/bus/bus.js';
import { streamName } from '../../../shared/bus/streams.js';
import { UnavailableError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';

/** The subject (under `<prefix>.evt.`) a type pattern selects: the version token is matched too. */
export const patternSubject = (pattern: string) => (pattern.endsWith('>') ? pattern : `${pattern}.*`);

const enc = new TextEncoder();
const blankLine = enc.encode('\n\n');

/** An event as an SSE message: `id: <seq>`, `data: <envelope>` (JSON on one line), a blank line. */
export const sseMessage = (m: JsMsg) =>
  Buffer.concat([enc.encode(`id: ${m.seq}\ndata: `), m.data, blankLine]);

/** A client of the live feed. */
export interface Tap {
  deliver(seq: number, subject: string, message: Uint8Array): void;
  /** The feed failed: end the stream (the client reconnects with Last-Event-ID). */
  end(): void;
}

/**
 * Every new event, from one ordered consumer of the EVENTS stream, to every tap of this process. It
 * runs while it has taps; one that fails ends its taps' streams, and the next client starts it anew.
 */
export class LiveFeed {
  private readonly taps = new Set<Tap>();
  private running: Promise<ConsumerMessages> | null = null;
  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  /** Resolves once the feed's consumer exists: every event stored after that reaches `tap`. */
  async add(tap: Tap): Promise<void> {
    this.taps.add(tap);
    try {
      this.running ??= this.start();
      await this.running;
    } catch (err) {
      this.taps.delete(tap);
      throw err;
    }
  }

  remove(tap: Tap): void {
    if (!this.taps.delete(tap) || this.taps.size > 0 || !this.running) return;
    const running = this.running;
    this.running = null;
    void running.then((messages) => messages.close()).catch(() => undefined);
  }

  private async start(): Promise<ConsumerMessages> {
    const evtPrefix = `${this.bus.prefix}.evt.`;
    const messages = await this.bus.js.consumers
      .get(streamName(this.bus.prefix, 'EVENTS'), {
        filter_subjects: `${evtPrefix}>`,
        deliver_policy: DeliverPolicy.New,
      })
      .then((consumer) => consumer.consume({ max_messages: 256 }))
      .catch((cause: unknown) => {
        this.running = null;
        throw new UnavailableError('the event stream is unavailable: JetStream did not answer', { cause });
      });
    const self = this.running;
    void (async () => {
      try {
        for await (const m of messages) {
          const subject = m.subject.slice(evtPrefix.length);
          const message = sseMessage(m);
          for (const tap of this.taps) {
            try {
              tap.deliver(m.seq, subject, message);
            } catch (err) {
              // One client's fault ends that client's stream, not everyone's.
              this.log.warn({ err }, 'event stream client failed');
              this.taps.delete(tap);
              try {
                tap.end();
              } catch {
                // Its response is already gone.
              }
            }
          }
        }
      } catch (err) {
        this.log.warn({ err }, 'event stream consumer failed');
      }
      // Closed because its last tap left (it has been replaced then), or failed: its taps' streams end.
      if (this.running !== self) return;
      this.running = null;
      for (const tap of [...this.taps]) tap.end();
      this.taps.clear();
    })();
    return messages;
  }
}

/** Open streams, so the gateway can end them when it stops (an open SSE response keeps a server up). */
export class EventStreams {
  private readonly open = new Set<() => void>();
  add(close: () => void): () => void {
    this.open.add(close);
    return () => {
      this.open.delete(close);
    };
  }
  get size() {
    return this.open.size;
  }
  closeAll() {
    for (const close of [...this.open]) close();
  }
}
