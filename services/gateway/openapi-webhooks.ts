import { z } from 'zod';
import { positive, q } from './openapi/docs.js';
import type { Example, RouteDoc } from './openapi-routes.js';
import {
  bulkRedelivery,
  createdWebhook,
  deliveryPage,
  deliveryRow,
  deliveryStatus,
  webhookInput,
  webhookRow,
} from './routes/webhooks.js';

/** The webhook routes' part of the OpenAPI document (merged into `routeDocs`). */
const ex = <S extends z.ZodType>(schema: S, example: z.input<S>): Example => ({ schema, example });
const tag = 'webhooks';
const row: z.input<typeof webhookRow> = {
  id: 4,
  url: 'https://tools.example.com/crowbar-hook',
  filter: 'noderole.*,node.changed',
  description: 'ticketing',
  state: 'active',
  failures: 0,
  deadLettered: 0,
  lastError: null,
  lastErrorAt: null,
  failedSeq: null,
  createdAt: '2026-12-02T00:31:00.000Z',
  createdBy: 'launcher',
  pending: 0,
  lastDeliveredSeq: 1842,
};
const failing: z.input<typeof webhookRow> = {
  ...row,
  state: 'failing',
  failures: 0,
  lastError:
    'its JetStream consumer webhook-4 is gone (was the EVENTS stream made anew?); resume it to deliver new events',
  lastErrorAt: '2026-12-02T00:40:12.000Z',
  failedSeq: null,
  pending: null,
  lastDeliveredSeq: null,
};
const deadLettered: z.input<typeof deliveryRow> = {
  id: '4-1843',
  webhook: 4,
  seq: 1843,
  eventId: '0b7f3c3e-8f5e-4d8e-9f7e-2f4b1e7c9a10',
  type: 'node.changed.v1',
  node: 'd52-54-00-12-34-56.cluster.example.com',
  status: 'dead-lettered',
  attempts: 10,
  httpStatus: 503,
  error: 'gave up after 10 attempts: HTTP 503: upstream unavailable',
  durationMs: 12,
  firstAttemptAt: '2026-12-02T00:36:05.000Z',
  lastAttemptAt: '2026-12-02T00:40:12.000Z',
  deliveredAt: null,
  redeliveries: 0,
};
const delivered: z.input<typeof deliveryRow> = {
  ...deadLettered,
  id: '4-1844',
  seq: 1844,
  eventId: '5d1e2a40-7c1b-4a51-b7f4-0c3d9e6a8b21',
  type: 'noderole.active.v1',
  status: 'delivered',
  attempts: 2,
  httpStatus: 200,
  error: 'connection refused',
  durationMs: 8,
  firstAttemptAt: '2026-12-02T00:40:12.100Z',
  lastAttemptAt: '2026-12-02T00:40:13.150Z',
  deliveredAt: '2026-12-02T00:40:13.150Z',
};
const delivery =
  'Each matching event is POSTed as its envelope (the JSON of the event stream\'s `data:`), in stream order, one at a time per webhook, with `X-Crowbar-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the secret>`, the Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the base64 part of the `whsec_` secret), `X-Crowbar-Delivery` (`<webhook>-<seq>`, the same on every attempt), `X-Crowbar-Event-Seq`, `X-Crowbar-Event-Type` and `X-Crowbar-Attempt`. A 2xx answer is success; anything else, a timeout or a refused connection is retried with exponential backoff and jitter, and after the bound (`CROWBAR_WEBHOOK_ATTEMPTS`) the event is dead-lettered — logged with the reason and passed over, so later events go ahead.';
const logQuery = {
  limit: q(positive, 'page size (default 100, at most 1000)'),
  cursor: q(z.string(), 'the `next` of the page before (opaque); left out, the newest events'),
  status: q(deliveryStatus, 'only deliveries whose last attempt left them so'),
};

export const webhookRouteDocs: Record<string, RouteDoc> = {
  'POST /api/v2/webhooks': {
    tag,
    summary: 'Register a webhook (admin)',
    description: `${delivery} The URL may point anywhere the gateway can reach (an admin decides). Answers the secret once.`,
    body: ex(webhookInput, {
      url: 'https://tools.example.com/crowbar-hook',
      filter: 'noderole.*,node.changed',
    }),
    status: 201,
    response: ex(createdWebhook, { ...row, lastDeliveredSeq: 0, secret: 'whsec_9mT3…' }),
  },
  'GET /api/v2/webhooks': {
    tag,
    summary: 'List webhooks (never their secrets)',
    response: ex(z.object({ webhooks: z.array(webhookRow) }), { webhooks: [row, failing] }),
  },
  'GET /api/v2/webhooks/:id': {
    tag,
    summary: 'Show a webhook: its state, the last error, events pending',
    params: { id: 'webhook id' },
    response: ex(webhookRow, failing),
  },
  'DELETE /api/v2/webhooks/:id': {
    tag,
    summary: 'Delete a webhook (admin); deliveries stop',
    params: { id: 'webhook id' },
    response: ex(webhookRow, { ...row, pending: null, lastDeliveredSeq: null }),
  },
  'GET /api/v2/webhooks/:id/deliveries': {
    tag,
    summary: "A webhook's delivery log, newest event first",
    description:
      "One row per event offered to the webhook, updated after every attempt (the stream's and redeliveries'): its delivery id (the `webhook-id` header), type, node, status, attempts, the last HTTP status or error, timestamps and the last attempt's duration. Each webhook keeps its newest `CROWBAR_WEBHOOK_LOG_KEEP` (1000) events. A bad `limit`, `cursor` or `status` is a 422 naming it.",
    params: { id: 'webhook id' },
    query: logQuery,
    response: ex(deliveryPage, { deliveries: [delivered, deadLettered], next: '1843' }),
  },
  'POST /api/v2/webhooks/:id/redeliver': {
    tag,
    summary: 'Send every dead-lettered event of a webhook again, in event order (admin)',
    description:
      "Takes every `dead-lettered` row of the webhook's delivery log (what `GET …/deliveries?status=dead-lettered` lists) and sends those events again from the EVENTS stream, signed anew with their same `webhook-id`: one after the other, oldest event first, each up to `CROWBAR_WEBHOOK_ATTEMPTS` attempts with backoff, in the background of the gateway asked — one given up on again does not stop the ones after it. Accepted at once (202) with how many were queued and their delivery ids in the order they are sent; each row counts the redelivery at once. Not queued: events the stream no longer has (`missing`) and ones an earlier bulk redelivery of the same gateway is still sending (`inFlight`). Out of band, like a single redelivery: it neither waits for nor holds back the webhook's stream deliveries. `status=dead-lettered` is required; another status, or any other query parameter, is a 422 naming it.",
    params: { id: 'webhook id' },
    query: {
      status: q(z.literal('dead-lettered'), 'required: `dead-lettered` (the only ones sent again in bulk)'),
    },
    status: 202,
    response: ex(bulkRedelivery, {
      webhook: 4,
      queued: 2,
      deliveries: ['4-1843', '4-1851'],
      missing: ['4-1201'],
      inFlight: [],
    }),
  },
  'POST /api/v2/webhooks/:id/deliveries/:delivery/redeliver': {
    tag,
    summary: 'Send a logged event again, with the same webhook-id (admin)',
    description:
      "Sends the event again from the EVENTS stream (kept 7 days), signed anew and with the same `webhook-id`, so a receiver that has it already can de-duplicate; a dead-lettered one too. Accepted at once (202, the row as it is); the gateway asked makes up to `CROWBAR_WEBHOOK_ATTEMPTS` attempts with backoff, each updating the row. Out of band: it does not wait for, or hold back, the webhook's stream deliveries. A 404 names what is missing: the webhook (`id`), the delivery in its log or the event in the stream (`delivery`).",
    params: {
      id: 'webhook id',
      delivery: 'the delivery id `<webhook>-<seq>` (its `webhook-id` header) or the event sequence',
    },
    status: 202,
    response: ex(deliveryRow, { ...deadLettered, redeliveries: 1 }),
  },
  'PUT /api/v2/webhooks/:id/resume': {
    tag,
    summary: 'Resume a failing webhook (its consumer made again) (admin)',
    params: { id: 'webhook id' },
    response: ex(webhookRow, {
      ...failing,
      state: 'active',
      pending: 0,
      lastDeliveredSeq: 0,
    }),
  },
};
