import { type Context, Hono } from 'hono';
import type { Bus } from '../../../shared/bus/bus.js';
import { ValidationError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { type ClientDeps, EventClient } from './events-client.js';
import { type EventStreams, LiveFeed } from './events-feed.js';

export { EventStreams, patternSubject } from './events-feed.js';

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
 * - New events reach every client of this gateway process from one ordered consumer (`LiveFeed`): one
 *   copy of each event comes from NATS and is formatted once, whatever the number of clients. A client
 *   that starts from a cursor reads the stream with an ordered consumer of its own until that reaches
 *   the events the feed has kept for it meanwhile, then goes on with the feed: each event once, in order
 *   (one that falls more than `maxBufferBytes` behind the feed keeps its own consumer).
 * - What a client is sent goes out in one write per turn of the event loop, and while events keep
 *   coming at most one write per 10 ms (a write is a system call, and 100 clients are 100 of them).
 * - Each client has its own buffer: a client whose buffer would hold more than `maxBufferBytes` with
 *   the next event is dropped instead of being sent it (an `event: dropped` message with the reason
 *   and the last id sent, then the end of the stream; a client that does not take even that within
 *   `dropGraceMs` is cut off), so it never holds back the others. It may reconnect with
 *   `Last-Event-ID` and lose nothing.
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

function parseSeq(raw: string | undefined, field: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw))
    throw new ValidationError(`${field} must be a stream sequence (a non-negative integer), got "${raw}"`, {
      field,
    });
  return Number(raw);
}

export function eventRoutes(opts: EventStreamOptions & { streams: EventStreams }): Hono {
  const { bus, log } = opts;
  const deps: ClientDeps = {
    bus,
    log,
    feed: new LiveFeed(bus, log),
    streams: opts.streams,
    maxBuffer: opts.maxBufferBytes ?? 1024 * 1024,
    graceMs: opts.dropGraceMs ?? 5_000,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
  };
  const app = new Hono();
  app.get('/events', async (c: Context) => {
    const patterns = parseEventFilter(c.req.query('filter'));
    const since =
      parseSeq(c.req.header('last-event-id'), 'Last-Event-ID') ?? parseSeq(c.req.query('since'), 'since');
    bus.guard?.read('EVENTS');
    const client = new EventClient(deps, patterns, since);
    await client.open();
    return c.body(client.body(), 200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  });
  return app;
}
