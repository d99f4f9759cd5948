/**
 * Runs `step` until it succeeds, fails with an error `retryable` does not accept, or the next wait would
 * end past `until` (epoch ms); the error of the last try is thrown. Between tries it waits
 * `delayMs(tries)` (tries so far, from 1), after calling `onRetry` (a keep-alive, a log line).
 */
export async function retrying<T>(
  step: () => Promise<T>,
  o: {
    retryable: (err: unknown) => boolean;
    until: number;
    delayMs: (tries: number) => number;
    onRetry?: (err: unknown, tries: number) => void;
  },
): Promise<{ value: T; tries: number }> {
  for (let tries = 1; ; tries++) {
    try {
      return { value: await step(), tries };
    } catch (err) {
      const wait = o.delayMs(tries);
      if (!o.retryable(err) || Date.now() + wait > o.until) throw err;
      o.onRetry?.(err, tries);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
