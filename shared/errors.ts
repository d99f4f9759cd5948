/**
 * Named error classes, mapped once: to HTTP status in the gateway and to bus outcomes in consumers.
 * Every error carries a stable `code`; callers branch on the class or code, never on the message.
 */
export type ErrorCode =
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'invalid_transition'
  | 'unavailable'
  | 'unauthorized'
  | 'forbidden'
  | 'internal';

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  field?: string;
  rule?: string;
}

export class CrowbarError extends Error {
  readonly code: ErrorCode = 'internal';
  /** Permanent errors are never retried by a consumer: the input itself is wrong. */
  readonly permanent: boolean = false;
  readonly field: string | undefined;
  readonly rule: string | undefined;
  constructor(message: string, opts: { cause?: unknown; field?: string; rule?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.field = opts.field;
    this.rule = opts.rule;
  }
  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) body.field = this.field;
    if (this.rule !== undefined) body.rule = this.rule;
    return body;
  }
}

export class NotFoundError extends CrowbarError {
  override readonly code = 'not_found';
  override readonly permanent = true;
}
export class ConflictError extends CrowbarError {
  override readonly code: ErrorCode = 'conflict';
  override readonly permanent = true;
}
export class InvalidTransitionError extends ConflictError {
  override readonly code = 'invalid_transition';
}
export class ValidationError extends CrowbarError {
  override readonly code = 'invalid';
  override readonly permanent = true;
}
export class UnavailableError extends CrowbarError {
  override readonly code = 'unavailable';
}
export class UnauthorizedError extends CrowbarError {
  override readonly code = 'unauthorized';
  override readonly permanent = true;
}
export class ForbiddenError extends CrowbarError {
  override readonly code = 'forbidden';
  override readonly permanent = true;
}

const byCode: Record<ErrorCode, new (m: string, o?: { field?: string; rule?: string }) => CrowbarError> = {
  not_found: NotFoundError,
  conflict: ConflictError,
  invalid: ValidationError,
  invalid_transition: InvalidTransitionError,
  unavailable: UnavailableError,
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  internal: CrowbarError,
};

/** Rebuilds a named error from its wire form (RPC replies). */
export function errorFromBody(body: ErrorBody): CrowbarError {
  const Ctor = byCode[body.code] ?? CrowbarError;
  const opts: { field?: string; rule?: string } = {};
  if (body.field !== undefined) opts.field = body.field;
  if (body.rule !== undefined) opts.rule = body.rule;
  return new Ctor(body.message, opts);
}

export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof CrowbarError) return err.toBody();
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

export const httpStatus: Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 422 | 500 | 503> = {
  not_found: 404,
  conflict: 409,
  invalid_transition: 409,
  invalid: 422,
  unavailable: 503,
  unauthorized: 401,
  forbidden: 403,
  internal: 500,
};

/**
 * True for an error that says the database is away or overloaded rather than that the request is wrong:
 * PostgreSQL's classes 08 (connection), 53 (resources) and 57P (shutting down, starting up), or the
 * driver failing to reach it or losing its connection. Looks through a few `cause` links (drizzle wraps).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e && i < 4; i++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (/^(08|53|57P)[0-9A-Z]{0,3}$/.test(code) || socketTrouble.has(code)))
      return true;
    if (typeof message === 'string' && poolTrouble.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
const socketTrouble = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);
const poolTrouble =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;
