import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Discovery tokens: what a machine booting into discovery presents to register itself, and nothing
 * else. The provisioner mints one into every discovery boot script; the gateway checks it. Both hold the
 * installation's discovery secret, so no state is shared: a token is `cbd1.<expiry>.<node>.<mac>`,
 * where `node` is 0 for an unknown machine or the id of the known node re-entering discovery (whose
 * token may re-pin that node's host key), and `mac` is an HMAC-SHA256 of the rest. Join tokens
 * (`cbj1.…`, minted by `POST /api/v2/join_tokens` for machines installed without discovery) have the
 * same form and register a machine as joined: bootenv local, crowbar-joined-node.
 */
export interface DiscoveryClaims {
  /** Seconds since the epoch after which the token is refused. */
  expires: number;
  /** The known node this boot is for, or null for an unknown machine. */
  nodeId: number | null;
}
export type TokenKind = 'discovery' | 'join';

const prefixes: Record<TokenKind, string> = { discovery: 'cbd1', join: 'cbj1' };
/** Whether a bearer string looks like a discovery or join token (not whether it is valid). */
export const isMachineToken = (token: string) => token.startsWith('cbd1.') || token.startsWith('cbj1.');
const sign = (secret: string, body: string) => createHmac('sha256', secret).update(body).digest('base64url');

export function mintDiscoveryToken(
  secret: string,
  claims: DiscoveryClaims,
  kind: TokenKind = 'discovery',
): string {
  const body = `${prefixes[kind]}.${Math.floor(claims.expires)}.${claims.nodeId ?? 0}`;
  return `${body}.${sign(secret, body)}`;
}

/** The token's claims, or the reason it is refused ('malformed', 'bad signature', 'expired'). */
export function checkDiscoveryToken(
  secret: string,
  token: string,
  nowSeconds: number,
): { ok: true; claims: DiscoveryClaims; kind: TokenKind } | { ok: false; reason: string } {
  const parts = token.split('.');
  const kind = (Object.keys(prefixes) as TokenKind[]).find((k) => prefixes[k] === parts[0]);
  if (parts.length !== 4 || !kind || token.length > 200) return { ok: false, reason: 'malformed' };
  const [prefix, exp, node, mac] = parts as [string, string, string, string];
  if (!/^\d{1,12}$/.test(exp) || !/^\d{1,12}$/.test(node)) return { ok: false, reason: 'malformed' };
  const want = Buffer.from(sign(secret, `${prefix}.${exp}.${node}`));
  const got = Buffer.from(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got))
    return { ok: false, reason: 'bad signature' };
  if (Number(exp) < nowSeconds) return { ok: false, reason: 'expired' };
  return {
    ok: true,
    kind,
    claims: { expires: Number(exp), nodeId: Number(node) === 0 ? null : Number(node) },
  };
}
