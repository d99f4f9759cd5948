import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { recordRef } from '../../../shared/catalogue/define.js';
import { UnavailableError, ValidationError } from '../../../shared/errors.js';
import type { TokenCache } from '../accounts.js';
import { parseBody } from '../body.js';
import type { GatewayStore, OperatorRole } from '../db/store.js';
import { tokenHash } from '../db/store.js';

export const operatorRole = z.enum(['admin', 'read-only']);
export const tokenInput = z
  .object({
    name: z
      .string()
      .regex(/^[a-z][-_a-z0-9]*$/, 'must start with a letter: lower-case letters, digits, - and _')
      .max(63),
    role: operatorRole.default('read-only'),
  })
  .strict();
export const tokenRow = z.object({
  id: z.number().int().positive(),
  name: z.string(),
  role: operatorRole,
  createdAt: z.string(),
  /** The token that created it; null for the launcher's. */
  createdBy: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export const createdToken = tokenRow.extend({
  /** The token itself: shown this once, stored only as a hash. */
  token: z.string(),
});
export const auditEntry = z.object({
  id: z.number().int().positive(),
  at: z.string(),
  token: z.string().nullable(),
  role: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  status: z.number().int(),
  result: z.string(),
  correlationId: z.string(),
});
export const auditPage = z.object({ entries: z.array(auditEntry), next: z.number().int().nullable() });

const positive = (v: string | undefined, field: string, max: number) => {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) < 1 || Number(v) > max)
    throw new ValidationError(`${field} must be a whole number from 1 to ${max}`, { field });
  return Number(v);
};

/**
 * Named operator tokens (`/tokens`) and the audit log (`/audit`), mounted under /api/v2. Without the
 * gateway's database (an app built for a test) they answer 503.
 */
export function tokenRoutes(accounts: { store: GatewayStore; tokens: TokenCache } | undefined): Hono<{
  Variables: { operator: OperatorRole; tokenName: string };
}> {
  const app = new Hono<{ Variables: { operator: OperatorRole; tokenName: string } }>();
  const db = () => {
    if (!accounts) throw new UnavailableError('named tokens and the audit log need the gateway database');
    return accounts.store;
  };
  app.post('/tokens', async (c) => {
    const { name, role } = await parseBody(c, tokenInput, 'token');
    const token = `cbt_${randomBytes(32).toString('base64url')}`;
    const row = await db().createToken(name, role, tokenHash(token), c.get('tokenName') ?? null);
    return c.json({ ...row, token }, 201);
  });
  app.get('/tokens', async (c) => c.json({ tokens: await db().listTokens() }));
  app.delete('/tokens/:id', async (c) => {
    const parsed = recordRef(100).safeParse(
      /^\d+$/.test(c.req.param('id')) ? Number(c.req.param('id')) : c.req.param('id'),
    );
    if (!parsed.success) throw new ValidationError('token must be an id or a token name', { field: 'id' });
    const row = await db().revokeToken(parsed.data);
    accounts?.tokens.clear();
    return c.json(row);
  });
  app.get('/audit', async (c) => {
    const limit = positive(c.req.query('limit'), 'limit', 1000) ?? 100;
    const before = positive(c.req.query('before'), 'before', Number.MAX_SAFE_INTEGER);
    const token = c.req.query('token');
    const entries = await db().listAudit({
      limit,
      ...(before !== undefined ? { before } : {}),
      ...(token ? { token } : {}),
    });
    return c.json({ entries, next: entries.length === limit ? entries.at(-1)!.id : null });
  });
  return app;
}
