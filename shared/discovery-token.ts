import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Discovery tokens: what a machine booting into discovery presents to register itself, and nothing
 * else. The provisioner mints one into every discovery boot script; the gateway checks it. Both hold the
 * installation's discovery secret, so no state is shared: a token is `cbd1.<expiry>.<node>.<mac>`,
 * where `node` is 0 for an unknown machine or the id of the known node re-entering discovery (whose
 * token may re-pin that node's host key), and `mac` is an HMAC-SHA256 of the rest.
 */
export interface DiscoveryClaims {
  /** Seconds since the epoch after which the token is refused. */
  expires: number;
  /** The known node this boot is for, or null for an unknown machine. */
  nodeId: number | null;
}

const prefix = 'cbd1';
const sign = (secret: string, body: string) => createHmac('sha256', secret).update(body).digest('base64url');

export function mintDiscoveryToken(secret: string, claims: DiscoveryClaims): string {
  const body = `${prefix}.${Math.floor(claims.expires)}.${claims.nodeId ?? 0}`;
  return `${body}.${sign(secret, body)}`;
}

/** The token's claims, or the reason it is refused ('malformed', 'bad signature', 'expired'). */
export function checkDiscoveryToken(
  secret: string,
  token: string,
  nowSeconds: number,
): { ok: true; claims: DiscoveryClaims } | { ok: false; reason: string } {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== prefix || token.length > 200)
    return { ok: false, reason: 'malformed' };
  const [, exp, node, mac] = parts as [string, string, string, string];
  if (!/^\d{1,12}$/.test(exp) || !/^\d{1,12}$/.test(node)) return { ok: false, reason: 'malformed' };
  const want = Buffer.from(sign(secret, `${prefix}.${exp}.${node}`));
  const got = Buffer.from(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got))
    return { ok: false, reason: 'bad signature' };
  if (Number(exp) < nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { expires: Number(exp), nodeId: Number(node) === 0 ? null : Number(node) } };
}
