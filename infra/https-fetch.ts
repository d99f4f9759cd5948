/**
 * A fetch that trusts a given CA (the CLI's CROWBAR_CACERT, the launcher's requests to its gateway):
 * Node's own fetch cannot be handed one. Kept free of other imports, as every CLI command loads it.
 */
import { request } from 'node:https';
import { Readable } from 'node:stream';

/** Certificate failures, in words an operator can act on. */
const certificateCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
export const isCertificateError = (code: string | undefined) =>
  code !== undefined && certificateCodes.has(code);

export interface CaFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/**
 * A fetch over https:// that trusts `ca` (PEM) in place of the system's roots. It answers a web Response
 * (the body streams, for the event stream); a failure rejects with `cause` carrying the socket's or the
 * TLS check's code, as Node's fetch does.
 */
export function fetchWithCa(url: string, ca: string, init: CaFetchInit = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        ca,
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers))
          for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, one);
        const status = res.statusCode ?? 502;
        const empty = status === 204 || status === 304 || init.method === 'HEAD';
        const body = empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        if (empty) res.resume();
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
      },
    );
    req.once('error', (cause) => {
      // Aborted (a timeout, Ctrl-C): the signal's reason, as fetch rejects with.
      if (init.signal?.aborted) return reject(init.signal.reason);
      reject(new TypeError('fetch failed', { cause }));
    });
    req.end(init.body);
  });
}
