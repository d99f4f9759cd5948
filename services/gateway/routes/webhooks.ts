import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { UnavailableError, ValidationError } from '../../../shared/errors.js';
import { jsonObject } from '../body.js';
import type { OperatorRole } from '../db/store.js';
import type { WebhookRow, WebhookStore } from '../db/webhooks.js';
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
  /** `failing`: stopped at `failedSeq` after too many failed attempts; `PUT …/resume` starts it again. */
  state: z.enum(['active', 'failing']),
  /** Failed attempts in a row at the event being delivered. */
  failures: z.number().int().nonnegative(),
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
