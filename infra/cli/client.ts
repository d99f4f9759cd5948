/**
 * The CLI's HTTP client for the gateway's `/api/v2`, and the one place where what went wrong becomes a
 * one-sentence message and an exit code (README "The crowbar CLI" lists them).
 */
import { readFileSync } from 'node:fs';
import { fetchWithCa, isCertificateError } from '../https-fetch.js';

/** Exit codes, documented in the README and in `crowbar --help`. */
export const exitCodes = {
  ok: 0,
  /** The command ran and what it waited for failed (converge: a noderole in error). */
  failed: 1,
  /** No token, or the token was refused (401) or may not do this (403). */
  token: 2,
  /** Nothing answers at the endpoint, or what answers is not a Crowbar gateway. */
  unreachable: 3,
  /** Crowbar refused the request (4xx: not found, conflict, invalid input — the message names the field). */
  refused: 4,
  /** Crowbar failed (5xx) or a service behind the gateway is down. */
  server: 5,
  /** `converge --timeout` ran out before the anneal settled. */
  timeout: 6,
  /** Bad command line (unknown command or option, a JSON argument that does not parse). */
  usage: 64,
} as const;
export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** An error the CLI reports as one sentence, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    opts: { cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CliError';
  }
}

export interface ClientConfig {
  /** Where the gateway is, e.g. `http://127.0.0.1:3000` (a trailing `/api/v2` is accepted). */
  endpoint: string;
  /** The operator token (OpenCrowbar's `CROWBAR_KEY`). */
  key: string | undefined;
  /** Per-request timeout; the event stream has none. */
  timeoutMs?: number;
  /** PEM file of a CA (or a self-signed certificate) trusted for an https:// endpoint. */
  cacert?: string | undefined;
}

export interface ErrorBody {
  code?: string;
  message?: string;
  field?: string;
  rule?: string;
}

/** `http://h:3000/api/v2/` and `http://h:3000` both mean the gateway at `http://h:3000`. */
export const baseUrl = (endpoint: string) => endpoint.replace(/\/+$/, '').replace(/\/api\/v2$/, '');

const sentence = (s: string) => (/[.!?]$/.test(s) ? s : `${s}.`);

/** Why a connection failed, in words (fetch wraps the socket error in `cause`). */
function networkReason(err: unknown, cacert: string | undefined): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (isCertificateError(cause?.code))
    return cacert
      ? `its TLS certificate is not trusted by ${cacert} (${cause?.message})`
      : `its TLS certificate is not trusted (${cause?.message}): pass --cacert or set CROWBAR_CACERT to the gateway's certificate, e.g. <state>/tls/gateway.crt`;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out';
    default:
      if ((err as Error).name === 'TimeoutError') return 'no answer in time';
      return cause?.message ?? (err as Error).message;
  }
}

export class Client {
  readonly base: string;
  /** The CA file's PEM, for https:// endpoints only. */
  private readonly ca: string | undefined;
  constructor(private readonly config: ClientConfig) {
    this.base = baseUrl(config.endpoint);
    if (!/^https?:\/\/[^/]/.test(this.base))
      throw new CliError(
        `the endpoint "${config.endpoint}" is not an http:// or https:// URL (set CROWBAR_ENDPOINT or --endpoint)`,
        exitCodes.usage,
      );
    if (config.cacert && this.base.startsWith('https:')) {
      try {
        this.ca = readFileSync(config.cacert, 'utf8');
      } catch {
        throw new CliError(
          `cannot read the CA file ${config.cacert} (--cacert or CROWBAR_CACERT)`,
          exitCodes.usage,
        );
      }
    }
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = this.config.key;
    if (!key)
      throw new CliError(
        'no operator token: set CROWBAR_KEY, pass --key or run `crowbar login`',
        exitCodes.token,
      );
    return { authorization: `Bearer ${key}`, accept: 'application/json', ...extra };
  }

  /** Opens `path` under /api/v2; network failures become "no Crowbar at …". */
  async open(
    method: string,
    path: string,
    opts: { body?: unknown; headers?: Record<string, string>; stream?: boolean; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const url = `${this.base}/api/v2${path}`;
    const timeout = opts.stream ? undefined : AbortSignal.timeout(this.config.timeoutMs ?? 60_000);
    const signal =
      opts.signal && timeout ? AbortSignal.any([opts.signal, timeout]) : (opts.signal ?? timeout);
    const headers = this.headers({
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...opts.headers,
    });
    const init = {
      method,
      headers,
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      ...(signal ? { signal } : {}),
    };
    try {
      return await (this.ca ? fetchWithCa(url, this.ca, init) : fetch(url, init));
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new CliError(
        `no Crowbar at ${this.base}: ${networkReason(err, this.config.cacert)}`,
        exitCodes.unreachable,
        { cause: err },
      );
    }
  }

  /**
   * A JSON request; any non-2xx answer is thrown as a CliError with its exit code. A GET of a list
   * follows its pages (`next`, passed back as `cursor`) and answers every row, unless the path asks for
   * one page itself (`limit` or `cursor` in its query).
   */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const first = await this.once(method, path, body);
    if (method !== 'GET' || /[?&](limit|cursor)=/.test(path)) return first as T;
    return (await followPages(first, (cursor) =>
      this.once('GET', `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`),
    )) as T;
  }

  private async once(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.open(method, path, body === undefined ? {} : { body });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new CliError(
        `no Crowbar at ${this.base}: ${method} ${path} answered HTTP ${res.status} with something that is not JSON`,
        exitCodes.unreachable,
      );
    }
    // 409 from GET /anneal is its answer, not an error (reference §3.9: 409 = failed).
    if (res.ok || (path === '/anneal' && res.status === 409)) return parsed;
    throw this.failure(res.status, parsed, `${method} ${path}`);
  }

  /** The CliError for an HTTP error answer. */
  failure(status: number, body: unknown, what: string): CliError {
    const b = (typeof body === 'object' && body !== null ? body : {}) as ErrorBody;
    if (typeof b.code !== 'string' || typeof b.message !== 'string')
      return new CliError(
        `no Crowbar API at ${this.base}: ${what} answered HTTP ${status} without a Crowbar error`,
        exitCodes.unreachable,
      );
    if (status === 401)
      return new CliError(
        `Crowbar at ${this.base} refused the token (${b.message}): set CROWBAR_KEY, pass --key or run \`crowbar login\`.`,
        exitCodes.token,
      );
    if (status === 403) return new CliError(sentence(`not allowed: ${b.message}`), exitCodes.token);
    const detail = [b.field ? `field ${b.field}` : '', b.rule ? `rule: ${b.rule}` : '']
      .filter(Boolean)
      .join('; ');
    const msg = detail ? `${b.message} (${detail})` : b.message;
    return new CliError(
      sentence(status >= 500 ? `Crowbar failed: ${msg}` : msg),
      status >= 500 ? exitCodes.server : exitCodes.refused,
    );
  }
}

/**
 * A list answer (`{nodes: [...], next}`: one array field and a string cursor) with the rows of every
 * page after it appended; anything else as it is.
 */
export async function followPages(
  first: unknown,
  page: (cursor: string) => Promise<unknown>,
): Promise<unknown> {
  const listKey = (v: unknown) => {
    if (typeof v !== 'object' || v === null || typeof (v as { next?: unknown }).next !== 'string')
      return null;
    const arrays = Object.entries(v).filter(([, x]) => Array.isArray(x));
    return arrays.length === 1 ? arrays[0]![0] : null;
  };
  const key = listKey(first);
  if (!key) return first;
  const rows = [...((first as Record<string, unknown[]>)[key] ?? [])];
  let last = first as Record<string, unknown>;
  while (typeof last.next === 'string' && listKey(last) === key) {
    last = (await page(last.next)) as Record<string, unknown>;
    rows.push(...((last[key] as unknown[] | undefined) ?? []));
  }
  return { ...last, [key]: rows, next: null };
}
