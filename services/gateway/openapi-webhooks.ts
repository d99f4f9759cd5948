import { z } from 'zod';
import type { Example, RouteDoc } from './openapi-routes.js';
import { createdWebhook, webhookInput, webhookRow } from './routes/webhooks.js';

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
  failures: 10,
  lastError: 'HTTP 503: upstream unavailable',
  lastErrorAt: '2026-12-02T00:40:12.000Z',
  failedSeq: 1843,
  pending: null,
  lastDeliveredSeq: null,
};
const delivery =
  'Each matching event is POSTed as its envelope (the JSON of the event stream\'s `data:`), in stream order, one at a time per webhook, with `X-Crowbar-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the secret>`, the Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the base64 part of the `whsec_` secret), `X-Crowbar-Delivery` (`<webhook>-<seq>`, the same on every attempt), `X-Crowbar-Event-Seq`, `X-Crowbar-Event-Type` and `X-Crowbar-Attempt`. A 2xx answer is success; anything else, a timeout or a refused connection is retried with exponential backoff and jitter, and after the bound the webhook is `failing` until resumed.';

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
  'PUT /api/v2/webhooks/:id/resume': {
    tag,
    summary: 'Resume a failing webhook from the event that failed (admin)',
    params: { id: 'webhook id' },
    response: ex(webhookRow, {
      ...failing,
      state: 'active',
      failures: 0,
      pending: 3,
      lastDeliveredSeq: 1842,
    }),
  },
};
