/**
 * Groups calls into batches the way a database groups commits: a call goes out at once while fewer
 * than `maxInFlight` batches are out; past that, calls wait and leave together (up to `maxBatch`) as
 * soon as a batch comes back. Idle, nothing waits; busy, each round trip carries many calls.
 */
export function createBatcher<Q, R>(opts: {
  maxBatch: number;
  maxInFlight: number;
  /** Answers the items in order; a rejection fails every item of that batch. */
  send: (items: Q[]) => Promise<R[]>;
}): (item: Q) => Promise<R> {
  const waiting: { item: Q; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  let inFlight = 0;
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    while (waiting.length > 0 && inFlight < opts.maxInFlight) {
      const batch = waiting.splice(0, opts.maxBatch);
      inFlight++;
      opts
        .send(batch.map((b) => b.item))
        .then(
          (results) => {
            batch.forEach((b, i) => {
              if (i < results.length) b.resolve(results[i]!);
              else b.reject(new Error(`batch answered ${results.length} of ${batch.length} items`));
            });
          },
          (err: unknown) => {
            for (const b of batch) b.reject(err);
          },
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      // Calls made in the same turn leave together.
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(pump);
      }
    });
}
