import type { MiddlewareHandler } from 'hono';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { type GatewayStore, type OperatorRole, tokenHash } from './db/store.js';

/** What a token is, for operatorAuth: its name and role, or null when unknown or revoked. */
export type TokenLookup = (token: string) => Promise<{ name: string; role: OperatorRole } | null>;

/**
 * Token checks against the gateway schema, each answer kept for `ttlMs` (500 ms): a revocation holds on
 * every gateway within that long (at once on the gateway that revoked it, which forgets everything), and
 * a busy gateway asks the database about a token at most twice a second.
 */
export class TokenCache {
  private readonly cache = new Map<
    string,
    { at: number; entry: { name: string; role: OperatorRole } | null }
  >();
  constructor(
    private readonly store: GatewayStore,
    private readonly clock: Clock,
    private readonly ttlMs = 500,
  ) {}
  readonly lookup: TokenLookup = async (token) => {
    const hash = tokenHash(token);
    const now = this.clock.now().getTime();
    const hit = this.cache.get(hash);
    if (hit && now - hit.at < this.ttlMs) return hit.entry;
    const entry = await this.store.findToken(hash);
    // Unknown tokens are cached too; a flood of made-up ones only ever costs this much memory.
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(hash, { at: now, entry });
    return entry;
  };
  clear(): void {
    this.cache.clear();
  }
}

/** The methods whose calls may change something: the app routes only these through auditLog. */
export const auditedMethods = ['POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * The audit log: every call that may change something (`auditedMethods`), refused ones included, with the
 * token's name and role, what was called, the status and error code, and the correlation id (the
 * caller's `x-correlation-id`, else one made up and answered in that header). Written before the answer
 * leaves, so a client that got its answer finds the entry.
 */
export function auditLog(
  store: GatewayStore,
  log: Logger,
): MiddlewareHandler<{
  Variables: { operator: OperatorRole; tokenName: string };
}> {
  return async (c, next) => {
    const correlationId = c.req.header('x-correlation-id') ?? crypto.randomUUID();
    await next();
    const status = c.res.status;
    let result = 'ok';
    if (status >= 400) {
      const body = (await c.res
        .clone()
        .json()
        .catch(() => null)) as { code?: unknown } | null;
      result = typeof body?.code === 'string' ? body.code : `http ${status}`;
    }
    c.res.headers.set('x-correlation-id', correlationId);
    await store
      .addAudit({
        token: c.get('tokenName') ?? null,
        role: c.get('operator') ?? null,
        method: c.req.method,
        path: c.req.path,
        status,
        result,
        correlationId,
      })
      .catch((err: unknown) =>
        log.error({ err, path: c.req.path, correlationId }, 'audit entry not written'),
      );
  };
}
