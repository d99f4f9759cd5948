import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { NotFoundError, UnavailableError, ValidationError } from '../../../shared/errors.js';
import { jsonObject } from '../body.js';
import type { OperatorRole } from '../db/store.js';
import type { DeliveryStatus, WebhookRow, WebhookStore } from '../db/webhooks.js';
import type { WebhookConsumers, WebhookDispatcher } from '../webhooks.js';
import { parseEventFilter } from './events.js';

const isHttpUrl = (s: string) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
};

export const webhookInput = z
  .object({
    /** Where deliveries go: an http:// or https:// URL, anywhere the gateway can reach. */
    url: z
      .string()
      .max(2000, 'must be at most 2000 characters')
      .refine(isHttpUrl, 'must be an http:// or https:// URL'),
    /** The event stream's filter grammar; left out, every event. */
    filter: z.string().max(1000).optional(),
    description: z.string().max(1000).optional(),
  })
  .strict();

export const webhookRow = z.object({
  id: z.number().int().positive(),
  url: z.string(),
  /** Comma-separated event type patterns; `>` is every event. */
  filter: z.string(),
  description: z.string(),
  /** `failing`: its JetStream consumer is gone, nothing is delivered; `PUT …/resume` starts it again. */
  state: z.enum(['active', 'failing']),
  /** Failed attempts in a row at the event being delivered. */
  failures: z.number().int().nonnegative(),
  /** Events given up on after the bound of attempts (each is in the delivery log). */
  deadLettered: z.number().int().nonnegative(),
  lastError: z.string().nullable(),
  lastErrorAt: z.string().nullable(),
  /** The stream sequence of the event the last failure was on. */
  failedSeq: z.number().int().nonnegative().nullable(),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  /** Matching events not yet delivered (null while failing: the consumer is gone until resumed). */
  pending: z.number().int().nonnegative().nullable(),
  /** The stream sequence of the last event delivered (0: none yet). */
  lastDeliveredSeq: z.number().int().nonnegative().nullable(),
});
export const createdWebhook = webhookRow.extend({
  /** Signs every delivery; shown this once. */
  secret: z.string(),
});

export const deliveryStatus = z.enum(['delivered', 'failed', 'dead-lettered']);
/** One event in a webhook's delivery log, after its latest attempt. */
export const deliveryRow = z.object({
  /** The delivery id, as `webhook-id` and `X-Crowbar-Delivery` carry it: `<webhook>-<seq>`. */
  id: z.string().regex(/^\d+-\d+$/),
  webhook: z.number().int().positive(),
  /** The event's stream sequence in EVENTS. */
  seq: z.number().int().positive(),
  /** The event envelope's id. */
  eventId: z.string().nullable(),
  /** `node.changed.v1`, … */
  type: z.string(),
  /** The node the event is about (its name), when it is about one. */
  node: z.string().nullable(),
  /** `failed`: the last attempt failed and another is due; `dead-lettered`: given up on, with the reason in `error`. */
  status: deliveryStatus,
  /** Attempts so far, redeliveries' included. */
  attempts: z.number().int().positive(),
  /** The last attempt's HTTP status; null when it got no answer (refused, cut, timed out). */
  httpStatus: z.number().int().nullable(),
  /** The last failure's reason (kept after a later success). */
  error: z.string().nullable(),
  /** How long the last attempt took. */
  durationMs: z.number().int().nonnegative(),
  firstAttemptAt: z.string(),
  lastAttemptAt: z.string(),
  deliveredAt: z.string().nullable(),
  /** Times an operator asked for it again. */
  redeliveries: z.number().int().nonnegative(),
});
/** What `POST …/redeliver?status=dead-lettered` queued: delivery ids, in event order. */
export const bulkRedelivery = z.object({
  webhook: z.number().int().positive(),
  /** How many events were queued (the length of `deliveries`). */
  queued: z.number().int().nonnegative(),
  /** The queued ones, oldest event first: the order they are sent in. */
  deliveries: z.array(z.string()),
  /** Dead-lettered ones whose event the EVENTS stream no longer has: not queued. */
  missing: z.array(z.string()),
  /** Dead-lettered ones this gateway is sending again already (an earlier bulk redelivery): not queued twice. */
  inFlight: z.array(z.string()),
});
export const deliveryPage = z.object({
  deliveries: z.array(deliveryRow),
  /** The cursor of the next (older) page; null on the last. */
  next: z.string().nullable(),
});

/** The body checked strictly: an unknown field is a 422 naming it. */
function parseInput(raw: Record<string, unknown>) {
  const r = webhookInput.safeParse(raw);
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  if (i.code === 'unrecognized_keys')
    throw new ValidationError(`invalid webhook: unknown field ${i.keys[0]}`, { field: i.keys[0]! });
  const field = i.path.join('.') || 'body';
  throw new ValidationError(`invalid webhook: ${field}: ${i.message}`, { field });
}

const webhookId = (raw: string) => {
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1)
    throw new ValidationError(`webhook id must be a positive integer, got "${raw.slice(0, 40)}"`, {
      field: 'id',
    });
  return Number(raw);
};

const deliveryLimit = { default: 100, max: 1000 } as const;

/** `limit`, `cursor` and `status` of a delivery log page; a bad one is a 422 naming it. */
function deliveryQuery(q: Record<string, string | undefined>) {
  const { limit, cursor, status } = q;
  if (
    limit !== undefined &&
    (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > deliveryLimit.max)
  )
    throw new ValidationError(
      `limit must be a whole number from 1 to ${deliveryLimit.max}, got "${limit.slice(0, 20)}"`,
      {
        field: 'limit',
      },
    );
  if (cursor !== undefined && !/^\d{1,15}$/.test(cursor))
    throw new ValidationError(
      `cursor must be the \`next\` of a previous page's answer, got "${cursor.slice(0, 40)}"`,
      {
        field: 'cursor',
      },
    );
  if (status !== undefined && !deliveryStatus.safeParse(status).success)
    throw new ValidationError(
      `status must be one of ${deliveryStatus.options.join(', ')}, got "${status.slice(0, 40)}"`,
      { field: 'status' },
    );
  return {
    limit: limit === undefined ? deliveryLimit.default : Number(limit),
    ...(cursor !== undefined ? { before: Number(cursor) } : {}),
    ...(status !== undefined ? { status: status as DeliveryStatus } : {}),
  };
}

/** The query of a bulk redelivery: `status=dead-lettered`, and nothing else (a 422 naming what is wrong). */
function bulkQuery(q: Record<string, string | undefined>): void {
  const unknown = Object.keys(q).find((k) => k !== 'status');
  if (unknown !== undefined)
    throw new ValidationError(`unknown query parameter ${unknown.slice(0, 40)}; only status is taken`, {
      field: unknown.slice(0, 40),
    });
  if (q.status !== 'dead-lettered')
    throw new ValidationError(
      q.status === undefined
        ? 'status is required: status=dead-lettered (a bulk redelivery sends the dead-lettered ones again)'
        : `status must be dead-lettered (only those are redelivered in bulk), got "${q.status.slice(0, 40)}"`,
      { field: 'status' },
    );
}

/** A delivery as the log names it (`<webhook>-<seq>`, the `webhook-id` header) or its bare sequence. */
function deliverySeq(raw: string, webhook: number): number {
  const m = /^(?:(\d{1,9})-)?(\d{1,15})$/.exec(raw);
  if (!m || Number(m[2]) < 1)
    throw new ValidationError(
      `delivery must be a delivery id such as ${webhook}-1843 (its webhook-id header) or an event sequence, got "${raw.slice(0, 40)}"`,
      { field: 'delivery' },
    );
  if (m[1] !== undefined && Number(m[1]) !== webhook)
    throw new NotFoundError(`delivery ${raw} is not webhook ${webhook}'s`, { field: 'delivery' });
  return Number(m[2]);
}

export interface WebhookRouteDeps {
  store: WebhookStore;
  consumers: WebhookConsumers;
  dispatcher: WebhookDispatcher;
}

/**
 * `/webhooks` under /api/v2: an admin token registers and deletes them (the gateway's auth refuses the
 * read-only token any write), any token lists them. Without the gateway database they answer 503.
 */
export function webhookRoutes(deps: WebhookRouteDeps | undefined): Hono<{
  Variables: { operator: OperatorRole; tokenName: string };
}> {
  const app = new Hono<{ Variables: { operator: OperatorRole; tokenName: string } }>();
  const need = () => {
    if (!deps) throw new UnavailableError('webhooks need the gateway database');
    return deps;
  };
  const withStatus = async (d: WebhookRouteDeps, row: WebhookRow) => {
    const s = await d.consumers.status(row.id).catch(() => null);
    return { ...row, pending: s?.pending ?? null, lastDeliveredSeq: s?.lastDeliveredSeq ?? null };
  };

  app.post('/webhooks', async (c) => {
    const d = need();
    const input = parseInput(await jsonObject(c));
    const patterns = parseEventFilter(input.filter);
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const row = await d.store.create(
      {
        url: input.url,
        filter: patterns.join(','),
        description: input.description ?? '',
        secret,
        createdBy: c.get('tokenName') ?? null,
      },
      (id) => d.consumers.create(id, patterns, null),
    );
    await d.dispatcher.refresh();
    return c.json({ ...(await withStatus(d, row)), secret }, 201);
  });
  app.get('/webhooks', async (c) => {
    const d = need();
    const rows = await d.store.list();
    return c.json({ webhooks: await Promise.all(rows.map((r) => withStatus(d, r))) });
  });
  app.get('/webhooks/:id', async (c) => {
    const d = need();
    return c.json(await withStatus(d, await d.store.get(webhookId(c.req.param('id')))));
  });
  app.delete('/webhooks/:id', async (c) => {
    const d = need();
    const row = await d.store.delete(webhookId(c.req.param('id')), async () => {
      await d.consumers.remove(Number(c.req.param('id')));
    });
    await d.dispatcher.refresh();
    return c.json({ ...row, pending: null, lastDeliveredSeq: null });
  });
  app.get('/webhooks/:id/deliveries', async (c) => {
    const d = need();
    const id = webhookId(c.req.param('id'));
    const q = deliveryQuery(c.req.query());
    await d.store.get(id);
    return c.json(await d.store.listDeliveries({ webhookId: id, ...q }));
  });
  app.post('/webhooks/:id/redeliver', async (c) => {
    const d = need();
    const id = webhookId(c.req.param('id'));
    bulkQuery(c.req.query());
    const target = await d.store.target(id);
    return c.json(await d.dispatcher.redeliverDead(target), 202);
  });
  app.post('/webhooks/:id/deliveries/:delivery/redeliver', async (c) => {
    const d = need();
    const id = webhookId(c.req.param('id'));
    const seq = deliverySeq(c.req.param('delivery'), id);
    const target = await d.store.target(id);
    const logged = await d.store.getDelivery(id, seq);
    if (!logged)
      throw new NotFoundError(`webhook ${id} has no delivery ${id}-${seq} in its log`, { field: 'delivery' });
    const ev = await d.dispatcher.eventOf(logged);
    if (!ev)
      throw new NotFoundError(
        `event ${seq} of delivery ${logged.id} is no longer in the EVENTS stream (it keeps events 7 days)`,
        { field: 'delivery' },
      );
    const row = await d.store.markRedelivery(id, seq);
    if (!row)
      throw new NotFoundError(`webhook ${id} has no delivery ${id}-${seq} in its log`, { field: 'delivery' });
    d.dispatcher.redeliver(target, ev, row.attempts);
    return c.json(row, 202);
  });
  app.put('/webhooks/:id/resume', async (c) => {
    const d = need();
    const row = await d.store.resume(webhookId(c.req.param('id')), async (r) => {
      // An active webhook with its consumer is left as it is; otherwise the consumer is made again,
      // from the event that failed (or, when that is unknown, from the next event).
      if (r.state === 'active' && (await d.consumers.status(r.id))) return;
      await d.consumers.create(r.id, r.filter.split(','), r.state === 'failing' ? r.failedSeq : null);
    });
    await d.dispatcher.refresh();
    return c.json(await withStatus(d, row));
  });
  return app;
}
