import { DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { type Context, Hono } from 'hono';
import type { Bus } from '../../../shared/bus/bus.js';
import { streamName } from '../../../shared/bus/streams.js';
import { subjectMatches } from '../../../shared/bus/subjects.js';
import { UnavailableError, ValidationError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';

/**
 * `GET /api/v2/events?filter=<patterns>&since=<seq>`: the EVENTS stream as server-sent events.
 *
 * - Each event is one SSE message: `id:` its stream sequence, `data:` its envelope (JSON, one line).
 *   Without `since` the stream starts with the next event; `since=N` (or a `Last-Event-ID: N` header,
 *   which wins, as a reconnecting EventSource sends it) starts with the first event after sequence N.
 * - `filter`: comma-separated patterns on the event type, NATS style: tokens separated by dots, `*`
 *   matches one token, `>` (last) one or more. `noderole.*`, `node.changed`, `dhcp.>`,
 *   `node.*,deployment.committed`. Left out: every event.
 * - A comment line (`: heartbeat`) every `heartbeatMs` keeps proxies from closing an idle stream.
 * - Each client has its own ordered consumer and its own buffer: a client whose buffer holds more than
 *   `maxBufferBytes` is dropped (an `event: dropped` message with the reason and the last id sent, then
 *   the end of the stream; a client that does not take even that within `dropGraceMs` is cut off), so
 *   it never holds back the others. It may reconnect with `Last-Event-ID` and lose nothing.
 */
export interface EventStreamOptions {
  bus: Bus;
  log: Logger;
  heartbeatMs?: number;
  maxBufferBytes?: number;
  dropGraceMs?: number;
}

const maxPatterns = 16;
const token = /^([a-z0-9_-]+|\*)$/;

/** Parses the filter grammar; throws a ValidationError naming the bad pattern. */
export function parseEventFilter(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return ['>'];
  const patterns = raw.split(',').map((p) => p.trim());
  if (patterns.length > maxPatterns)
    throw new ValidationError(`filter has ${patterns.length} patterns; at most ${maxPatterns}`, {
      field: 'filter',
    });
  for (const p of patterns) {
    const tokens = p.split('.');
    const ok = tokens.every((t, i) => token.test(t) || (t === '>' && i === tokens.length - 1));
    if (!p || !ok)
      throw new ValidationError(
        `filter pattern "${p}" is not an event type pattern such as noderole.*, node.changed or dhcp.>`,
        { field: 'filter' },
      );
  }
  return patterns;
}

/** The subject (under `<prefix>.evt.`) a type pattern selects: the version token is matched too. */
export const patternSubject = (pattern: string) => (pattern.endsWith('>') ? pattern : `${pattern}.*`);

function parseSeq(raw: string | undefined, field: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw))
    throw new ValidationError(`${field} must be a stream sequence (a non-negative integer), got "${raw}"`, {
      field,
    });
  return Number(raw);
}

const enc = new TextEncoder();

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

export function eventRoutes(opts: EventStreamOptions & { streams: EventStreams }): Hono {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBuffer = opts.maxBufferBytes ?? 1024 * 1024;
  const graceMs = opts.dropGraceMs ?? 5_000;
  const { bus, log } = opts;
  const app = new Hono();
  const evtPrefix = `${bus.prefix}.evt.`;

  app.get('/events', async (c: Context) => {
    const patterns = parseEventFilter(c.req.query('filter'));
    const since =
      parseSeq(c.req.header('last-event-id'), 'Last-Event-ID') ?? parseSeq(c.req.query('since'), 'since');
    const single = patterns.length === 1 ? patterns[0]! : null;
    bus.guard?.read('EVENTS');
    const messages = await bus.js.consumers
      .get(streamName(bus.prefix, 'EVENTS'), {
        filter_subjects: `${evtPrefix}${single === null ? '>' : patternSubject(single)}`,
        ...(since === undefined
          ? { deliver_policy: DeliverPolicy.New }
          : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: since + 1 }),
      })
      .then((consumer) => consumer.consume({ max_messages: 256 }))
      .catch((cause: unknown) => {
        throw new UnavailableError('the event stream is unavailable: JetStream did not answer', { cause });
      });
    const wanted =
      single === null
        ? (subject: string) => patterns.some((p) => subjectMatches(patternSubject(p), subject))
        : () => true;

    let lastId = since ?? 0;
    let finished = false;
    let heartbeat: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    let unregister: () => void = () => undefined;
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const stop = () => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      unregister();
      void messages.close().catch(() => undefined);
    };
    const send = (text: string) => ctrl.enqueue(enc.encode(text));
    const drop = (reason: string) => {
      log.warn({ lastId, filter: patterns.join(','), reason }, 'event stream client dropped');
      stop();
      send(`event: dropped\ndata: ${JSON.stringify({ reason, lastId })}\n\n`);
      // End once the client has taken what is queued; cut it off if it does not within the grace.
      grace = setTimeout(() => ctrl.error(new Error(`event stream client dropped: ${reason}`)), graceMs);
      grace.unref();
    };
    const forward = (m: JsMsg) => {
      if (finished) return;
      const subject = m.subject.slice(evtPrefix.length);
      if (!wanted(subject)) return;
      lastId = m.seq;
      send(`id: ${m.seq}\ndata: ${m.string()}\n\n`);
      if ((ctrl.desiredSize ?? 0) < 0)
        drop(`client too slow: more than ${maxBuffer} bytes waiting to be sent`);
    };
    const body = new ReadableStream<Uint8Array>(
      {
        start(controller) {
          ctrl = controller;
          send(`retry: 1000\n: connected\n\n`);
          heartbeat = setInterval(() => send(': heartbeat\n\n'), heartbeatMs);
          unregister = opts.streams.add(() => {
            if (finished) return;
            stop();
            ctrl.close();
          });
          void (async () => {
            try {
              for await (const m of messages) forward(m);
            } catch (err) {
              if (!finished) {
                log.warn({ err }, 'event stream consumer failed');
                stop();
                ctrl.close();
              }
            }
          })();
        },
        pull() {
          // Everything queued has gone out: a dropped client got its notice and can be let go.
          if (grace && ctrl.desiredSize !== null && ctrl.desiredSize >= maxBuffer) {
            clearTimeout(grace);
            grace = undefined;
            ctrl.close();
          }
        },
        cancel() {
          clearTimeout(grace);
          stop();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: maxBuffer }),
    );
    return c.body(body, 200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  });
  return app;
}
