import { createHash } from 'node:crypto';
import { and, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import type { Database } from '../../../shared/db/database.js';
import { ConflictError, NotFoundError } from '../../../shared/errors.js';
import { audit, tokens } from './schema.js';

/** Every query the gateway makes: operator tokens and the audit log. */
export type OperatorRole = 'admin' | 'read-only';
export interface TokenRow {
  id: number;
  name: string;
  role: OperatorRole;
  createdAt: string;
  createdBy: string | null;
  revokedAt: string | null;
}
export interface AuditRow {
  id: number;
  at: string;
  token: string | null;
  role: string | null;
  method: string;
  path: string;
  status: number;
  result: string;
  correlationId: string;
}

/** Tokens are 32 random bytes, so one SHA-256 is as good as a slow hash and costs nothing per request. */
export const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

const tokenColumns = {
  id: tokens.id,
  name: tokens.name,
  role: tokens.role,
  createdAt: tokens.createdAt,
  createdBy: tokens.createdBy,
  revokedAt: tokens.revokedAt,
};
const iso = (d: Date | null) => (d ? d.toISOString() : null);
const tokenRow = (r: {
  id: number;
  name: string;
  role: OperatorRole;
  createdAt: Date;
  createdBy: string | null;
  revokedAt: Date | null;
}): TokenRow => ({ ...r, createdAt: r.createdAt.toISOString(), revokedAt: iso(r.revokedAt) });

export class GatewayStore {
  constructor(private readonly database: Database) {}
  private get db() {
    return this.database.db;
  }

  /** The live (not revoked) token with this hash. */
  async findToken(hash: string): Promise<{ name: string; role: OperatorRole } | null> {
    const [r] = await this.db
      .select({ name: tokens.name, role: tokens.role })
      .from(tokens)
      .where(and(eq(tokens.hash, hash), isNull(tokens.revokedAt)));
    return r ?? null;
  }

  async createToken(
    name: string,
    role: OperatorRole,
    hash: string,
    createdBy: string | null,
  ): Promise<TokenRow> {
    const [r] = await this.db
      .insert(tokens)
      .values({ name, role, hash, createdBy })
      .onConflictDoNothing()
      .returning(tokenColumns);
    if (!r)
      throw new ConflictError(`a token named ${name} exists already`, {
        field: 'name',
        rule: 'unique names',
      });
    return tokenRow(r);
  }

  /**
   * The launcher's token (CROWBAR_ADMIN_TOKEN, and the read-only one) as a named token: created at the
   * first start; a new value replaces the old one; the same value, once revoked, stays revoked.
   */
  async ensureToken(name: string, role: OperatorRole, hash: string): Promise<void> {
    await this.db
      .insert(tokens)
      .values({ name, role, hash })
      .onConflictDoUpdate({
        target: tokens.name,
        set: {
          hash,
          role,
          revokedAt: sql`case when ${tokens.hash} = excluded.hash then ${tokens.revokedAt} else null end`,
        },
      });
  }

  async listTokens(): Promise<TokenRow[]> {
    return (await this.db.select(tokenColumns).from(tokens).orderBy(tokens.id)).map(tokenRow);
  }

  /** Revokes by id or name; revoking twice is fine. */
  async revokeToken(ref: number | string): Promise<TokenRow> {
    const where = typeof ref === 'number' ? eq(tokens.id, ref) : eq(tokens.name, ref);
    const [r] = await this.db
      .update(tokens)
      .set({ revokedAt: sql`coalesce(${tokens.revokedAt}, now())` })
      .where(where)
      .returning(tokenColumns);
    if (!r) throw new NotFoundError(`no token ${ref}`, { field: 'token' });
    return tokenRow(r);
  }

  async addAudit(row: Omit<AuditRow, 'id' | 'at'>): Promise<void> {
    await this.db.insert(audit).values(row);
  }

  /** Newest first; `before` is the cursor (the last id of the previous page). */
  async listAudit(f: { limit: number; before?: number; token?: string }): Promise<AuditRow[]> {
    const where = [
      ...(f.before !== undefined ? [lt(audit.id, f.before)] : []),
      ...(f.token !== undefined ? [eq(audit.token, f.token)] : []),
    ];
    const rows = await this.db
      .select()
      .from(audit)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(audit.id))
      .limit(f.limit);
    return rows.map((r) => ({ ...r, at: r.at.toISOString() }));
  }
}
