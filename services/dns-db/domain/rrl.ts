import { isIPv4 } from 'node:net';
import { expandV6 } from './names.js';

export type RrlVerdict = 'send' | 'slip' | 'drop';

export interface RrlOptions {
  /** Responses per second per client prefix; 0 turns limiting off. */
  ratePerSecond: number;
  /** Every n-th limited response goes out truncated (TC=1) so a real client retries over TCP; 0 never. */
  slip: number;
  now: () => number;
  /** Bound on tracked prefixes; the table is swept when it grows past this. */
  maxPrefixes?: number;
}

interface Bucket {
  tokens: number;
  last: number;
  limited: number;
}

/**
 * Response rate limiting per client prefix (/24 for IPv4, /56 for IPv6), a token bucket each. Spoofed
 * floods aimed at a victim are cut to the rate; slipped truncated replies keep legitimate resolvers
 * working over TCP, which is never limited.
 */
export class ResponseRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  readonly stats = { dropped: 0, slipped: 0 };
  constructor(private readonly opts: RrlOptions) {}

  get enabled() {
    return this.opts.ratePerSecond > 0;
  }

  check(address: string): RrlVerdict {
    const rate = this.opts.ratePerSecond;
    if (rate <= 0) return 'send';
    const key = prefixOf(address);
    const now = this.opts.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= (this.opts.maxPrefixes ?? 100_000)) this.sweep(now);
      b = { tokens: rate, last: now, limited: 0 };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.last) / 1000) * rate);
    b.last = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'send';
    }
    b.limited++;
    if (this.opts.slip > 0 && b.limited % this.opts.slip === 0) {
      this.stats.slipped++;
      return 'slip';
    }
    this.stats.dropped++;
    return 'drop';
  }

  /** Forgets prefixes idle for a second or more (their bucket is full again anyway). */
  private sweep(now: number) {
    for (const [k, b] of this.buckets) if (now - b.last >= 1000) this.buckets.delete(k);
    if (this.buckets.size >= (this.opts.maxPrefixes ?? 100_000)) this.buckets.clear();
  }
}

export function prefixOf(address: string): string {
  if (isIPv4(address)) return address.slice(0, address.lastIndexOf('.'));
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+)\.\d+$/i.exec(address);
  if (v4mapped) return v4mapped[1]!;
  return expandV6(address).join('').slice(0, 14);
}
