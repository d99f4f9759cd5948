import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { isMachineToken } from '../../shared/discovery-token.js';
import { type ErrorBody, httpStatus } from '../../shared/errors.js';

export type OperatorRole = 'admin' | 'read-only';

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * A refusal, answered as app.onError answers an UnauthorizedError or ForbiddenError (`toBody()` and its
 * status), without making one: a refusal is the gateway's cheapest answer and the one a flood of bad
 * requests gets, and an exception (its stack trace, the rejected promises on the way out) cost more
 * than all the rest of it.
 */
const refuse = (c: Context, code: 'unauthorized' | 'forbidden', message: string) =>
  c.json({ code, message } satisfies ErrorBody, httpStatus[code]);

/**
 * Operator auth: `Authorization: Bearer <token>`. The admin token may do anything; the read-only token
 * only GET/HEAD. Paths in `publicPaths` (health) and `nodePaths` (node-facing, own credential) pass through.
 */
export function operatorAuth(opts: {
  adminToken: string;
  readOnlyToken: string | undefined;
  publicPaths: RegExp[];
  /** Paths that also take the token as `?token=` (the event stream: a browser's EventSource sets no headers). */
  queryTokenPaths?: RegExp[];
  /** Named tokens (the gateway schema); given, it decides instead of the two static tokens. */
  lookup?: (token: string) => Promise<{ name: string; role: OperatorRole } | null>;
}): MiddlewareHandler<{ Variables: { operator: OperatorRole; tokenName: string } }> {
  return async (c, next) => {
    const path = c.req.path;
    if (opts.publicPaths.some((p) => p.test(path))) return next();
    const header = c.req.header('authorization') ?? '';
    const token =
      (header.startsWith('Bearer ') ? header.slice(7).trim() : '') ||
      (opts.queryTokenPaths?.some((p) => p.test(path)) ? (c.req.query('token') ?? '') : '');
    if (!token) return refuse(c, 'unauthorized', 'missing operator token (Authorization: Bearer <token>)');
    let role: OperatorRole | null = null;
    let name: string | undefined;
    if (opts.lookup) {
      const found = await opts.lookup(token);
      role = found?.role ?? null;
      name = found?.name;
    } else if (same(token, opts.adminToken)) role = 'admin';
    else if (opts.readOnlyToken && same(token, opts.readOnlyToken)) role = 'read-only';
    // A discovery token (what a booting machine holds) may register, and nothing else.
    if (!role && isMachineToken(token))
      return refuse(
        c,
        'forbidden',
        'a discovery or join token can only register a machine (POST /api/v2/node-api/register)',
      );
    if (!role) return refuse(c, 'unauthorized', 'invalid operator token');
    // Set before the read-only check, so the audit log names who was refused.
    c.set('operator', role);
    if (name !== undefined) c.set('tokenName', name);
    if (role === 'read-only' && c.req.method !== 'GET' && c.req.method !== 'HEAD')
      return refuse(c, 'forbidden', 'the read-only token cannot change anything');
    return next();
  };
}
