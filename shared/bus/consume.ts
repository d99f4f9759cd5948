import { type ConsumerMessages, type JsMsg, RetentionPolicy } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { z } from 'zod';
import {
  type CommandDef,
  type ConsumerDecl,
  type EventDef,
  filterFor,
  system,
  wireType,
} from '../catalogue/index.js';
import { CrowbarError, ValidationError } from '../errors.js';
import type { Logger } from '../log.js';
import { type Bus, decodeEnvelope, parsePayload } from './bus.js';
import type { Envelope } from './envelope.js';
import { watchStranded } from './stranded.js';
import { applyConsumer, streamName } from './streams.js';

/** What a handler decided. Returning nothing means ack. */
export type Outcome =
  | { outcome: 'ack' }
  | { outcome: 'retry'; delayMs: number; reason: string }
  | { outcome: 'reject'; reason: string };
export const ack = (): Outcome => ({ outcome: 'ack' });
export const retry = (delayMs: number, reason: string): Outcome => ({ outcome: 'retry', delayMs, reason });
export const reject = (reason: string): Outcome => ({ outcome: 'reject', reason });

export interface HandlerContext {
  log: Logger;
  /** Delivery attempt, 1 for the first. */
  attempt: number;
  /** Tells JetStream the work is still going so it is not redelivered; call during long work. */
  keepAlive(): void;
}

type Def = EventDef | CommandDef;
export type Handler<D extends Def> = (
  data: z.infer<D['schema']>,
  env: Envelope<z.infer<D['schema']>>,
  ctx: HandlerContext,
) => Promise<Outcome | undefined> | Promise<void>;

/** One handler per message type the consumer's filter admits: a missing one is a compile error. */
export type Handlers<Ds extends readonly Def[]> = {
  [K in keyof Ds]: Ds[K] extends Def ? [Ds[K], Handler<Ds[K]>] : never;
};

export interface ConsumeOptions<Ds extends readonly Def[]> {
  decl: ConsumerDecl;
  handlers: Handlers<Ds>;
  /** Messages handled at once by this process. */
  concurrency?: number;
  log: Logger;
  /** How often a work-queue consumer is checked for messages it would never deliver (default 10 s). */
  strandedCheckMs?: number;
}

export interface ConsumerHandle {
  stop(): Promise<void>;
  /** Counters for status reports. */
  stats: { handled: number; retried: number; deadLettered: number };
  /** A work-queue consumer's checks for stored messages it would not deliver, and times it was made again. */
  readonly stranded: { checks: number; remade: number };
}

/**
 * Whole milliseconds: nats-server reads a NAK's delay as integer nanoseconds and redelivers at once when
 * it is not one, which turned every backoff into ten retries in a few milliseconds.
 */
const backoffMs = (attempt: number) =>
  Math.round(Math.min(30_000, 250 * 2 ** Math.max(0, attempt - 1)) * (0.8 + Math.random() * 0.4));

/**
 * Runs a durable consumer. Each message is decoded, validated against the catalogue and handed to its
 * handler. Malformed messages and permanent errors are dead-lettered at once; other failures are retried
 * with backoff until `decl.maxDeliver`, then dead-lettered. A message that comes back after its bound
 * (its worker died each time) is dead-lettered without running the handler again.
 */
export async function consume<const Ds extends readonly Def[]>(
  bus: Bus,
  opts: ConsumeOptions<Ds>,
): Promise<ConsumerHandle> {
  const { log } = opts;
  const pairs = opts.handlers as unknown as [Def, Handler<Def>][];
  const decl: ConsumerDecl & { filterSubject: string } = {
    ...opts.decl,
    filterSubject: opts.decl.filterSubject ?? filterFor(...pairs.map((p) => p[0])),
  };
  bus.guard?.read(decl.stream);
  await applyConsumer(bus.jsm, bus.prefix, decl);
  const table = new Map<string, [Def, Handler<Def>]>();
  for (const pair of pairs) table.set(wireType(pair[0]), pair);
  const concurrency = opts.concurrency ?? 16;
  const stats = { handled: 0, retried: 0, deadLettered: 0 };
  const stream = streamName(bus.prefix, decl.stream);
  const consumer = await bus.js.consumers.get(stream, decl.durable);

  const deadLetter = async (m: JsMsg, reason: string, env: Envelope | null) => {
    stats.deadLettered++;
    log.warn(
      { subject: m.subject, deliveries: m.info.deliveryCount, reason, messageId: env?.id ?? null },
      'message dead-lettered',
    );
    const deadSubject = `dead.${decl.stream.toLowerCase()}.${decl.durable}`;
    const msgId = `dead:${decl.stream}:${m.info.streamSequence}`;
    // Keep the original bytes so nothing is lost, then announce it as an event.
    await bus.js.publish(bus.subject(deadSubject), m.data, {
      msgID: msgId,
      headers: deadHeaders(m.subject, reason, m.info.deliveryCount),
    });
    await bus.publish(
      system.messageDeadLettered,
      {
        stream: decl.stream,
        consumer: decl.durable,
        subject: m.subject,
        deliveries: m.info.deliveryCount,
        reason,
        messageId: env?.id ?? null,
      },
      { msgId: `${msgId}:event`, ...(env ? { correlationId: env.correlationId, causationId: env.id } : {}) },
    );
    // No reason string: nats-server 2.9 ignores a +TERM that carries one.
    m.term();
  };

  const handle = async (m: JsMsg) => {
    const attempt = m.info.deliveryCount;
    let env: Envelope | null = null;
    try {
      env = decodeEnvelope(m.data);
      if (attempt > decl.maxDeliver) {
        await deadLetter(m, `no outcome after ${decl.maxDeliver} deliveries (worker died or timed out)`, env);
        return;
      }
      const pair = table.get(env.type);
      if (!pair) throw new ValidationError(`no handler for message type ${env.type}`, { field: 'type' });
      const data = parsePayload(pair[0].schema, env.data, `${env.type} payload`);
      // The envelope was decoded for this delivery alone, so it can carry the parsed payload itself.
      env.data = data;
      const out = (await pair[1](data, env, new MessageContext(log, env, attempt, m))) ?? ack();
      if (out.outcome === 'ack') {
        stats.handled++;
        m.ack();
      } else if (out.outcome === 'reject') {
        await deadLetter(m, `rejected: ${out.reason}`, env);
      } else if (attempt >= decl.maxDeliver) {
        await deadLetter(m, `gave up after ${attempt} attempts: ${out.reason}`, env);
      } else {
        stats.retried++;
        m.nak(Math.round(out.delayMs));
      }
    } catch (err) {
      const permanent = err instanceof CrowbarError && err.permanent;
      const reason = err instanceof Error ? err.message : String(err);
      if (permanent) {
        await deadLetter(m, `rejected: ${reason}`, env).catch((e: unknown) =>
          log.error({ err: e }, 'dead-letter failed'),
        );
      } else if (attempt >= decl.maxDeliver) {
        await deadLetter(m, `gave up after ${attempt} attempts: ${reason}`, env).catch((e: unknown) =>
          log.error({ err: e }, 'dead-letter failed'),
        );
      } else {
        stats.retried++;
        log.warn({ err, subject: m.subject, attempt }, 'handler failed; will retry');
        m.nak(backoffMs(attempt));
      }
    }
  };

  // Messages arrive through a callback, straight from the socket read: the handlers for one read all
  // start in the same turn, so their publishes and acks leave in one write. Past `concurrency` they
  // wait here, in arrival order; the pull batch and the consumer's max_ack_pending bound the wait.
  const waiting: JsMsg[] = [];
  let active = 0;
  let drained: (() => void) | null = null;
  const run = (m: JsMsg) => {
    active++;
    const done = () => {
      active--;
      const next = waiting.shift();
      if (next) run(next);
      else if (active === 0) drained?.();
    };
    handle(m).then(done, (err: unknown) => {
      log.error({ err, subject: m.subject }, 'message handling failed');
      done();
    });
  };
  const pull = (c: typeof consumer) =>
    c.consume({
      max_messages: Math.max(concurrency * 2, 64),
      callback: (m) => {
        if (active < concurrency) run(m);
        else waiting.push(m);
      },
    });
  let messages: ConsumerMessages = await pull(consumer);
  // A work-queue stream's consumer is watched for messages it would never deliver (stranded.ts).
  const retention = (await bus.jsm.streams.info(stream)).config.retention;
  const watch =
    retention === RetentionPolicy.Workqueue
      ? watchStranded({
          jsm: bus.jsm,
          prefix: bus.prefix,
          decl,
          everyMs: opts.strandedCheckMs ?? 10_000,
          log,
          restart: async () => {
            const old = messages;
            messages = await pull(await bus.js.consumers.get(stream, decl.durable));
            await old.close().catch(() => undefined);
          },
        })
      : null;

  return {
    stats,
    get stranded() {
      return { checks: watch?.stats.checks ?? 0, remade: watch?.stats.remade ?? 0 };
    },
    async stop() {
      watch?.stop();
      await messages.close().catch(() => undefined);
      // Not started: hand them back at once rather than after the ack wait.
      for (const m of waiting.splice(0)) m.nak();
      if (active > 0) await new Promise<void>((r) => (drained = r));
    },
  };
}

/** What a handler gets besides the message; the child logger is built on first use (most never log). */
class MessageContext implements HandlerContext {
  private child: Logger | null = null;
  constructor(
    private readonly parent: Logger,
    private readonly env: Envelope,
    readonly attempt: number,
    private readonly m: JsMsg,
  ) {}
  get log(): Logger {
    this.child ??= this.parent.child({
      msgType: this.env.type,
      messageId: this.env.id,
      correlationId: this.env.correlationId,
    });
    return this.child;
  }
  /**
   * Bound, so handlers can pass `ctx.keepAlive` to a timer on its own; built on first use (an arrow
   * property would cost every message a closure).
   */
  get keepAlive(): () => void {
    const m = this.m;
    return () => m.working();
  }
}

function deadHeaders(subject: string, reason: string, deliveries: number) {
  const h = headers();
  h.set('Crowbar-Original-Subject', subject);
  h.set('Crowbar-Reason', reason.slice(0, 500).replace(/[\r\n]/g, ' '));
  h.set('Crowbar-Deliveries', String(deliveries));
  return h;
}
