import { createHmac } from 'node:crypto';

/**
 * One webhook delivery: the event's envelope as the body of a JSON POST, signed twice with the webhook's
 * secret — `X-Crowbar-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret as written>`
 * and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
 * HMAC-SHA256 of "<id>.<timestamp>.<body>", keyed with the base64 part of the `whsec_` secret>`) — so a
 * receiver may check either. The delivery id (`<webhook>-<seq>`) is the same on every attempt at the
 * same event, for de-duplication.
 */
export interface Delivery {
  webhookId: number;
  url: string;
  secret: string;
  /** The event's stream sequence in EVENTS. */
  seq: number;
  /** `node.changed.v1`, … (the subject's tail). */
  type: string;
  /** The envelope as stored in the stream. */
  body: string;
  attempt: number;
}

/** How an attempt went: the HTTP status (null: no answer) and how long it took. */
export type DeliveryResult =
  | { ok: true; status: number; durationMs: number }
  | { ok: false; status: number | null; error: string; durationMs: number };

export const deliveryId = (webhookId: number, seq: number) => `${webhookId}-${seq}`;

/** The secret's key bytes as Standard Webhooks defines them (base64 after `whsec_`). */
const standardKey = (secret: string) => Buffer.from(secret.replace(/^whsec_/, ''), 'base64');

export function signatureHeaders(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Record<string, string> {
  const crowbar = createHmac('sha256', secret).update(body).digest('hex');
  const standard = createHmac('sha256', standardKey(secret))
    .update(`${id}.${timestamp}.${body}`)
    .digest('base64');
  return {
    'x-crowbar-signature': `sha256=${crowbar}`,
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${standard}`,
  };
}

/** Why a POST failed, in words (fetch wraps the socket error in `cause`). */
function failure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  switch (e.cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed before an answer';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    default:
      return e.cause?.message ?? e.message ?? String(err);
  }
}

/** POSTs one delivery; a 2xx is success, anything else (a redirect too) is a failure with its reason. */
export async function postDelivery(
  d: Delivery,
  opts: { timeoutMs: number; userAgent: string; now: () => Date },
): Promise<DeliveryResult> {
  const id = deliveryId(d.webhookId, d.seq);
  const headers = {
    'content-type': 'application/json',
    'user-agent': opts.userAgent,
    'x-crowbar-delivery': id,
    'x-crowbar-event-seq': String(d.seq),
    'x-crowbar-event-type': d.type,
    'x-crowbar-attempt': String(d.attempt),
    ...signatureHeaders(d.secret, id, Math.floor(opts.now().getTime() / 1000), d.body),
  };
  const started = performance.now();
  const took = () => Math.round(performance.now() - started);
  try {
    const res = await fetch(d.url, {
      method: 'POST',
      headers,
      body: d.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    // Read (a little of) the answer so the connection can be reused, and for the error.
    const text = (await res.text().catch(() => '')).slice(0, 200).replace(/\s+/g, ' ').trim();
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, durationMs: took() };
    return {
      ok: false,
      status: res.status,
      error: `HTTP ${res.status}${text ? `: ${text}` : ''}`,
      durationMs: took(),
    };
  } catch (err) {
    return { ok: false, status: null, error: failure(err, opts.timeoutMs), durationMs: took() };
  }
}

/** What the log says about an event: its envelope's id, and the node it is about (its name), if any. */
export function eventFacts(body: string): { eventId: string | null; node: string | null } {
  let env: { id?: unknown; data?: Record<string, unknown> };
  try {
    env = JSON.parse(body) as typeof env;
  } catch {
    return { eventId: null, node: null };
  }
  const data = typeof env?.data === 'object' && env.data !== null ? env.data : {};
  const node = data.node as { name?: unknown } | string | undefined;
  const noderole = data.noderole as { node?: unknown } | undefined;
  const name =
    typeof node === 'string'
      ? node
      : typeof node?.name === 'string'
        ? node.name
        : typeof noderole?.node === 'string'
          ? noderole.node
          : null;
  return { eventId: typeof env?.id === 'string' ? env.id : null, node: name };
}

/** Exponential backoff with ±20 % jitter: `base`, 2·`base`, 4·`base`, … up to `max`. */
export const backoffMs = (failures: number, base: number, max: number, random = Math.random) =>
  Math.round(Math.min(max, base * 2 ** Math.max(0, failures - 1)) * (0.8 + random() * 0.4));
