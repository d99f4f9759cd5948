import type { JetStreamManager } from '@nats-io/jetstream';
import type { ConsumerDecl } from '../catalogue/index.js';
import type { Logger } from '../log.js';
import { applyConsumer, streamName } from './streams.js';

/**
 * Watches a durable consumer of a work-queue stream for messages it will never deliver.
 *
 * nats-server 2.9 (Debian 12's) can leave such a consumer ahead of its stream after leader changes in a
 * cluster: seen in test/faults-nats-cluster.test.ts, the JIG stream held 4 jobs (last sequence 52) while
 * the runners' consumer counted 72 as delivered and had nothing pending, so the 4 runs waited for their
 * deadline and held the anneal's cap. A work-queue stream keeps only what no one has acknowledged, so
 * every message stored on the consumer's filter is one it still owes: pending or awaiting an ack. Seen
 * owing less than is stored twice in a row, with nothing delivered in between, the consumer is deleted
 * and made again from its declaration (a new consumer delivers what the stream holds: exactly the
 * stranded messages, and the ones in flight a second time, which handlers take as a redelivery), and
 * `restart` has this process consume the new one.
 */
export function watchStranded(opts: {
  jsm: JetStreamManager;
  prefix: string;
  decl: ConsumerDecl & { filterSubject: string };
  everyMs: number;
  log: Logger;
  restart: () => Promise<void>;
}): { stop(): void; stats: { checks: number; remade: number } } {
  const { jsm, prefix, decl, log } = opts;
  const stream = streamName(prefix, decl.stream);
  const stats = { checks: 0, remade: 0 };
  let suspect: { delivered: number; created: string } | null = null;
  let busy = false;

  const check = async () => {
    const c = await jsm.consumers.info(stream, decl.durable);
    const owed = c.num_pending + c.num_ack_pending;
    const s = await jsm.streams.info(stream, { subjects_filter: `${prefix}.${decl.filterSubject}` });
    const stored = Object.values(s.state.subjects ?? {}).reduce((a, n) => a + n, 0);
    const seen = { delivered: c.delivered.stream_seq, created: c.created };
    stats.checks++;
    if (stored <= owed) {
      suspect = null;
      return;
    }
    const again = suspect?.delivered === seen.delivered && suspect.created === seen.created;
    suspect = seen;
    if (!again) return;
    suspect = null;
    log.error(
      {
        stream: decl.stream,
        consumer: decl.durable,
        stored,
        pending: c.num_pending,
        ackPending: c.num_ack_pending,
        delivered: seen.delivered,
        streamLast: s.state.last_seq,
      },
      'consumer will not deliver messages its work-queue stream holds; making it again',
    );
    await jsm.consumers.delete(stream, decl.durable).catch(() => undefined);
    await applyConsumer(jsm, prefix, decl);
    stats.remade++;
    await opts.restart();
  };

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    check()
      .catch((err: unknown) => log.debug({ err, consumer: decl.durable }, 'stranded-message check failed'))
      .finally(() => {
        busy = false;
      });
  }, opts.everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer), stats };
}
