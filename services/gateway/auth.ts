import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { isMachineToken } from '../../shared/discovery-token.js';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';

export type OperatorRole = 'admin' | 'read-only';

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

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
    if (opts.publicPaths.some((p) => p.test(c.req.path))) return next();
    const header = c.req.header('authorization') ?? '';
    const token =
      (header.startsWith('Bearer ') ? header.slice(7).trim() : '') ||
      (opts.queryTokenPaths?.some((p) => p.test(c.req.path)) ? (c.req.query('token') ?? '') : '');
    if (!token) throw new UnauthorizedError('missing operator token (Authorization: Bearer <token>)');
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
      throw new ForbiddenError(
        'a discovery or join token can only register a machine (POST /api/v2/node-api/register)',
      );
    if (!role) throw new UnauthorizedError('invalid operator token');
    // Set before the read-only check, so the audit log names who was refused.
    c.set('operator', role);
    if (name !== undefined) c.set('tokenName', name);
    if (role === 'read-only' && !['GET', 'HEAD'].includes(c.req.method)) {
      throw new ForbiddenError('the read-only token cannot change anything');
    }
    return next();
  };
}
