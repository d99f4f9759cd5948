import {
  AckPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { ConsumerDecl, StreamDecl } from '../catalogue/index.js';
import { retrying } from '../retry.js';

export const streamName = (prefix: string, name: string) => `${prefix.toUpperCase()}_${name}`;

/**
 * A create refused with "error creating store for stream" (10077): nats-server 2.9 removes an account's
 * emptied store directory when its last stream is deleted, and a create racing that removal fails to
 * make its own directory. Nothing was created; the same create a moment later succeeds.
 */
const storeRace = (err: unknown) => err instanceof JetStreamApiError && err.code === 10077;

/** Creates or updates each declared stream so that running it twice changes nothing. */
export async function applyStreams(
  jsm: JetStreamManager,
  prefix: string,
  decls: readonly StreamDecl[],
  replicas = 1,
): Promise<void> {
  for (const d of decls) {
    const config = {
      name: streamName(prefix, d.name),
      subjects: d.subjects.map((s) => `${prefix}.${s}`),
      retention: d.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(d.maxAgeMs),
      duplicate_window: nanos(d.duplicateWindowMs),
      max_msgs: d.maxMsgs ?? -1,
      num_replicas: replicas,
    };
    const existing = await jsm.streams.info(config.name).catch(() => null);
    if (!existing) {
      const add = () => jsm.streams.add(config);
      await retrying(add, {
        retryable: storeRace,
        until: Date.now() + 5000,
        delayMs: (n) => 50 * 2 ** n,
      }).catch(async (err: unknown) => {
        // Another process may have created it between our look and our add.
        if (!(await jsm.streams.info(config.name).catch(() => null))) throw err;
      });
      continue;
    }
    const c = existing.config;
    const same =
      c.subjects.join(',') === config.subjects.join(',') &&
      c.max_age === config.max_age &&
      c.duplicate_window === config.duplicate_window &&
      c.max_msgs === config.max_msgs &&
      c.num_replicas === config.num_replicas;
    if (!same) {
      const { retention: _r, storage: _s, ...mutable } = config;
      await jsm.streams.update(config.name, mutable);
    }
  }
}

/** Creates or updates a durable pull consumer. The server bound is one past ours, see consume.ts. */
export async function applyConsumer(jsm: JetStreamManager, prefix: string, d: ConsumerDecl): Promise<void> {
  const stream = streamName(prefix, d.stream);
  const config = {
    durable_name: d.durable,
    ack_policy: AckPolicy.Explicit,
    // One filter subject per consumer: Debian's nats-server (2.9) has no filter_subjects.
    filter_subject: `${prefix}.${d.filterSubject}`,
    ack_wait: nanos(d.ackWaitMs),
    max_deliver: d.maxDeliver + 1,
    max_ack_pending: 10_000,
  };
  const existing = await jsm.consumers.info(stream, d.durable).catch(() => null);
  if (!existing) {
    await jsm.consumers.add(stream, config).catch(async (err: unknown) => {
      if (!(await jsm.consumers.info(stream, d.durable).catch(() => null))) throw err;
    });
    return;
  }
  const c = existing.config;
  if (
    c.filter_subject !== config.filter_subject ||
    c.ack_wait !== config.ack_wait ||
    c.max_deliver !== config.max_deliver
  ) {
    const { durable_name: _d, ack_policy: _a, ...mutable } = config;
    await jsm.consumers.update(stream, d.durable, mutable);
  }
}
