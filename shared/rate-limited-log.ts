import type { Logger } from './log.js';

/**
 * A log line per event, but at most `perMinute` lines per key each minute, so a storm of bad packets or
 * requests cannot flood the log; how many were left out is said when the next minute starts.
 */
export function rateLimitedLog(
  log: Logger,
  level: 'debug' | 'info' | 'warn',
  msg: string,
  perMinute = 10,
  now: () => number = Date.now,
) {
  const seen = new Map<string, { n: number; since: number }>();
  return (key: string, fields: Record<string, unknown>) => {
    const t = now();
    const s = seen.get(key);
    if (!s || t - s.since > 60_000) {
      if (s && s.n > perMinute) log[level]({ key, suppressed: s.n - perMinute }, `${msg} (repeats left out)`);
      if (seen.size > 1000) seen.clear();
      seen.set(key, { n: 1, since: t });
    } else if (++s.n > perMinute) return;
    log[level](fields, msg);
  };
}
