import { type ConsumerMessages, DeliverPolicy } from '@nats-io/jetstream';
import type { Bus } from '../../../shared/bus/bus.js';
import { streamName } from '../../../shared/bus/streams.js';
import { subjectMatches } from '../../../shared/bus/subjects.js';
import { UnavailableError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { type EventStreams, type LiveFeed, patternSubject, sseMessage, type Tap } from './events-feed.js';

/** A client is written to at most once per this many ms while events keep coming. */
const coalesceMs = 10;

const enc = new TextEncoder();

export interface ClientDeps {
  bus: Bus;
  log: Logger;
  feed: LiveFeed;
  streams: EventStreams;
  maxBuffer: number;
  graceMs: number;
  heartbeatMs: number;
}

/**
 * One client of `GET /events`: its filter, its cursor, its own buffer (the response stream's queue,
 * `maxBuffer` bytes) and what waits for its next coalesced write. From a cursor it reads with a
 * consumer of its own until that meets what the feed kept for it meanwhile (`readCatchUp`), then goes
 * on with the feed. `open` joins the feed; `body` is the response.
 */
export class EventClient implements Tap {
  private lastId: number;
  private finished = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private grace: NodeJS.Timeout | undefined;
  private unregister: () => void = () => undefined;
  private ctrl: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** What goes out in this turn of the event loop, as one chunk (the first, once the stream is there). */
  private pending: Uint8Array[] = [enc.encode('retry: 1000\n: connected\n\n')];
  private pendingBytes = 0;
  /** The response has ended (the client went, or we ended it): nothing more may be queued. */
  private closed = false;
  private lastFlush = 0;
  private flushing = false;
  /** From a cursor: the client's own consumer until it meets what the feed has kept for it. */
  private catchingUp: boolean;
  private catchUp: ConsumerMessages | null = null;
  private kept: { seq: number; message: Uint8Array }[] = [];
  private keptBytes = 0;
  /** Event types are few: each one's verdict is worked out once per client. */
  private readonly verdicts = new Map<string, boolean>();
  private readonly evtPrefix: string;

  constructor(
    private readonly deps: ClientDeps,
    private readonly patterns: string[],
    private readonly since: number | undefined,
  ) {
    this.lastId = since ?? 0;
    this.catchingUp = since !== undefined;
    this.evtPrefix = `${deps.bus.prefix}.evt.`;
  }

  /** Joins the feed (first, so nothing falls between the cursor's consumer and it), then the cursor's consumer. */
  async open(): Promise<void> {
    const { bus, feed } = this.deps;
    await feed.add(this);
    if (this.since === undefined) return;
    const single = this.patterns.length === 1 ? this.patterns[0]! : null;
    this.catchUp = await bus.js.consumers
      .get(streamName(bus.prefix, 'EVENTS'), {
        filter_subjects: `${this.evtPrefix}${single === null ? '>' : patternSubject(single)}`,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: this.since + 1,
      })
      .then((consumer) => consumer.consume({ max_messages: 256 }))
      .catch((cause: unknown) => {
        feed.remove(this);
        throw new UnavailableError('the event stream is unavailable: JetStream did not answer', { cause });
      });
  }

  /** The response body: a byte stream whose queue is the client's buffer. */
  body(): ReadableStream<Uint8Array> {
    const { maxBuffer, heartbeatMs, streams } = this.deps;
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.ctrl = controller;
          if (this.finished) {
            // Ended (the feed failed) while its cursor's consumer was being made: just the greeting.
            this.flush();
            this.closed = true;
            controller.close();
            return;
          }
          this.later();
          const beat = enc.encode(': heartbeat\n\n');
          this.heartbeat = setInterval(() => this.send(beat), heartbeatMs);
          this.unregister = streams.add(() => this.end());
          if (this.catchUp) void this.readCatchUp(this.catchUp);
        },
        pull: () => {
          // Everything queued has gone out: a dropped client got its notice and can be let go.
          const ctrl = this.ctrl!;
          if (this.grace && ctrl.desiredSize !== null && ctrl.desiredSize >= maxBuffer) {
            clearTimeout(this.grace);
            this.grace = undefined;
            this.closed = true;
            ctrl.close();
          }
        },
        cancel: () => {
          this.closed = true;
          clearTimeout(this.grace);
          this.stop();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: maxBuffer }),
    );
  }

  /** An event from the feed (`Tap`): forwarded, or kept while the cursor's consumer catches up. */
  deliver(seq: number, subject: string, message: Uint8Array): void {
    if (this.finished || !this.wanted(subject)) return;
    if (!this.catchingUp) {
      this.forward(seq, message);
      return;
    }
    this.kept.push({ seq, message });
    this.keptBytes += message.byteLength;
    if (this.keptBytes > this.deps.maxBuffer) {
      // The cursor's consumer is far behind the feed: it stays the client's (as if the client had
      // started there), and what was kept goes, so nothing grows without bound.
      this.deps.feed.remove(this);
      this.kept = [];
      this.keptBytes = 0;
    }
  }

  /** The feed failed or the gateway stops (`Tap`): what is pending goes out, then the end. */
  end(): void {
    if (this.finished) return;
    this.stop();
    this.flush();
    this.closed = true;
    this.ctrl?.close();
  }

  private wanted(subject: string): boolean {
    let yes = this.verdicts.get(subject);
    if (yes === undefined) {
      yes = this.patterns.some((p) => subjectMatches(patternSubject(p), subject));
      if (this.verdicts.size < 1000) this.verdicts.set(subject, yes);
    }
    return yes;
  }

  private stop(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.heartbeat);
    this.unregister();
    this.deps.feed.remove(this);
    void this.catchUp?.close().catch(() => undefined);
    this.catchUp = null;
    this.kept = [];
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const ctrl = this.ctrl;
    if (!ctrl || this.closed || this.pending.length === 0 || this.grace) return;
    this.lastFlush = Date.now();
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    ctrl.enqueue(chunk);
    if (!this.finished && (ctrl.desiredSize ?? 0) < 0) this.drop(this.tooSlow());
  };

  /** At most one write per `coalesceMs` while events keep coming; the first after a pause at once. */
  private later(): void {
    if (this.flushing || !this.ctrl) return;
    this.flushing = true;
    const wait = this.lastFlush + coalesceMs - Date.now();
    if (wait > 0) setTimeout(this.flush, wait);
    else setImmediate(this.flush);
  }

  private send(message: Uint8Array): void {
    this.pending.push(message);
    this.pendingBytes += message.byteLength;
    this.later();
  }

  private tooSlow(): string {
    return `client too slow: more than ${this.deps.maxBuffer} bytes waiting to be sent`;
  }

  private drop(reason: string): void {
    const { lastId } = this;
    this.deps.log.warn({ lastId, filter: this.patterns.join(','), reason }, 'event stream client dropped');
    this.stop();
    this.flush();
    const ctrl = this.ctrl!;
    ctrl.enqueue(enc.encode(`event: dropped\ndata: ${JSON.stringify({ reason, lastId })}\n\n`));
    // End once the client has taken what is queued; cut it off if it does not within the grace.
    this.grace = setTimeout(() => {
      this.closed = true;
      ctrl.error(new Error(`event stream client dropped: ${reason}`));
    }, this.deps.graceMs);
    this.grace.unref();
  }

  private forward(seq: number, message: Uint8Array): void {
    if (this.finished || seq <= this.lastId) return;
    const { maxBuffer } = this.deps;
    // What this process holds back for a coalesced write is not the client's to answer for: before it
    // could fill the room, it goes to the stream now, and the room left is what the client has not
    // taken. (Counted against the client, a burst of 10 ms dropped a client that was keeping up.)
    if (this.ctrl && this.pendingBytes + message.byteLength > (this.ctrl.desiredSize ?? maxBuffer))
      this.flush();
    if (this.finished) return;
    // An event that would overfill the client's buffer is not sent: the client is dropped before it
    // (unless its buffer is empty, so that one event larger than the buffer still gets through).
    const room = (this.ctrl?.desiredSize ?? maxBuffer) - this.pendingBytes;
    if (room - message.byteLength < 0 && room < maxBuffer) {
      this.drop(this.tooSlow());
      return;
    }
    this.lastId = seq;
    this.send(message);
  }

  /** The cursor's consumer, until it meets the first event the feed kept: then the feed's, and it closes. */
  private async readCatchUp(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.finished || this.catchUp !== messages) return;
        const subject = m.subject.slice(this.evtPrefix.length);
        if (!this.wanted(subject)) continue;
        if (this.kept.length > 0 && m.seq >= this.kept[0]!.seq) {
          this.catchingUp = false;
          this.catchUp = null;
          void messages.close().catch(() => undefined);
          for (const k of this.kept) this.forward(k.seq, k.message);
          this.kept = [];
          this.keptBytes = 0;
          return;
        }
        this.forward(m.seq, sseMessage(m));
      }
    } catch (err) {
      if (!this.finished) {
        this.deps.log.warn({ err }, 'event stream consumer failed');
        this.end();
      }
    }
  }
}
