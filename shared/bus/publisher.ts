import {
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { UnavailableError } from '../errors.js';

/** What JetStream answers when it has stored a message. */
export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  deadline: number;
  subject: string;
}

/**
 * JetStream publishing with one reply subscription shared by every publish. nats.js's `js.publish`
 * is a full request per message (its own timer, a promise chain, and an Error object built to cancel
 * the request even when it succeeded), which was the largest single cost of our dispatch path. Here a
 * publish is a plain NATS publish with a reply subject ending in a counter; acks are matched by that
 * counter, and one interval timer fails the publishes whose ack is overdue. Publishes pipeline freely.
 */
export class JsPublisher {
  private readonly inbox: string;
  private readonly pending = new Map<number, Pending>();
  private readonly sub: Subscription;
  private readonly timer: NodeJS.Timeout;
  private next = 0;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix?: string,
    private readonly timeoutMs = 5000,
  ) {
    this.inbox = `${createInbox(inboxPrefix)}.`;
    this.sub = nc.subscribe(`${this.inbox}*`, { callback: (_err, m) => this.settle(m) });
    this.timer = setInterval(() => this.expire(), Math.max(50, Math.min(1000, timeoutMs / 4)));
    this.timer.unref();
  }

  /** Stores `data` under `subject`; a second publish with the same `msgId` is stored once. */
  publish(subject: string, data: Uint8Array, msgId: string): Promise<PubAck> {
    if (this.closed)
      return Promise.reject(new UnavailableError(`cannot publish to ${subject}: publisher closed`));
    const token = ++this.next;
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    return new Promise<PubAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs, subject });
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}${token}`, headers: h });
      } catch (cause) {
        this.pending.delete(token);
        reject(new UnavailableError(`cannot publish to ${subject}: ${String(cause)}`, { cause }));
      }
    });
  }

  /** Resolves once every publish made so far has its ack (or has failed); bounded by the ack timeout. */
  async settled(): Promise<void> {
    const end = Date.now() + this.timeoutMs;
    while (this.pending.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  }

  /** Fails everything still waiting; later acks are ignored. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.sub.unsubscribe();
    for (const [token, p] of this.pending) {
      this.pending.delete(token);
      p.reject(new UnavailableError(`publish to ${p.subject} abandoned: connection closing`));
    }
  }

  private settle(m: Msg): void {
    const token = Number(m.subject.slice(this.inbox.length));
    const p = this.pending.get(token);
    if (!p) return; // timed out already, or not ours
    this.pending.delete(token);
    if (m.headers?.hasError) {
      p.reject(
        m.headers.code === 503
          ? new UnavailableError(`no JetStream stream stores ${p.subject}`)
          : new UnavailableError(
              `publish to ${p.subject} failed: ${m.headers.code} ${m.headers.description}`,
            ),
      );
      return;
    }
    const fast = plainAck(
      Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('latin1'),
    );
    if (fast) {
      p.resolve(fast);
      return;
    }
    let ack: {
      stream?: string;
      seq?: number;
      duplicate?: boolean;
      error?: { code: number; description: string };
    };
    try {
      ack = JSON.parse(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('utf8'));
    } catch (cause) {
      p.reject(new UnavailableError(`publish to ${p.subject}: unreadable ack`, { cause }));
      return;
    }
    if (ack.error || !ack.stream || typeof ack.seq !== 'number') {
      const why = ack.error ? `${ack.error.code} ${ack.error.description}` : 'ack names no stream';
      p.reject(new UnavailableError(`publish to ${p.subject} refused by JetStream: ${why}`));
      return;
    }
    p.resolve({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true });
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) break; // insertion order is deadline order
      this.pending.delete(token);
      p.reject(new UnavailableError(`no JetStream ack for ${p.subject} within ${this.timeoutMs} ms`));
    }
  }
}

/**
 * The common ack read without JSON.parse: `{"stream":"<name>", "seq":<n>}`, optionally with
 * `,"duplicate": true`, as nats-server writes it (spaces optional). Anything else, errors included,
 * returns null and is parsed in full.
 */
const plainAckPattern =
  /^\{"stream": ?"([A-Za-z0-9_-]+)", ?(?:"domain": ?"[^"]*", ?)?"seq": ?(\d+)(, ?"duplicate": ?true)?\}$/;
function plainAck(text: string): PubAck | null {
  const m = plainAckPattern.exec(text);
  if (!m) return null;
  return { stream: m[1]!, seq: Number(m[2]), duplicate: m[3] !== undefined };
}
