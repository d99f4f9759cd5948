import type { MiddlewareHandler } from 'hono';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';

/** Per source address: `perSecond` requests sustained, `burst` at once. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** Addresses tracked at most; past it the table starts afresh (a flood of sources must not grow memory). */
const maxSources = 20_000;

/**
 * A token bucket per source address for the node-facing routes (registration, node reports), which
 * take no operator token: a machine — or anything on the admin network — that asks faster than
 * `perSecond` (after a `burst`) gets 429 with Retry-After and nothing is asked of any service. The
 * address is the TCP peer's; forwarding headers are not trusted.
 */
export function rateLimitBySource(limit: RateLimit, clock: Clock, log: Logger): MiddlewareHandler {
  const buckets = new Map<string, { tokens: number; at: number; warned: boolean }>();
  return async (c, next) => {
    const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
    const source = (incoming?.socket?.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
    const now = clock.now().getTime();
    if (buckets.size > maxSources) buckets.clear();
    const b = buckets.get(source) ?? { tokens: limit.burst, at: now, warned: false };
    b.tokens = Math.min(limit.burst, b.tokens + ((now - b.at) / 1000) * limit.perSecond);
    b.at = now;
    buckets.set(source, b);
    if (b.tokens < 1) {
      const retry = Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond));
      if (!b.warned) log.warn({ source, perSecond: limit.perSecond }, 'node API requests rate-limited');
      b.warned = true;
      c.header('Retry-After', String(retry));
      return c.json(
        {
          code: 'rate_limited',
          message: `too many node API requests from ${source}: at most ${limit.perSecond} per second (burst ${limit.burst}); retry in ${retry} s`,
        },
        429,
      );
    }
    b.tokens -= 1;
    b.warned = false;
    await next();
  };
}
