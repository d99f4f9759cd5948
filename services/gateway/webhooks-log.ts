import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import type { DeliveryStatus, WebhookStore } from './db/webhooks.js';
import type { WebhookConsumers, WebhookOptions } from './webhooks-consumers.js';
import type { DeliveryResult } from './webhooks-delivery.js';

/** What every part of webhook delivery in a gateway process is given. */
export interface WebhookDeps {
  bus: Bus;
  store: WebhookStore;
  consumers: WebhookConsumers;
  opts: WebhookOptions;
  log: Logger;
  clock: Clock;
  userAgent: string;
}

/** An event as it is sent: its stream sequence, type, the envelope as stored, and what the log shows. */
export interface EventToSend {
  seq: number;
  type: string;
  body: string;
  eventId: string | null;
  node: string | null;
}

/** Waits `ms`; false when `signal` aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The delivery log, written after every attempt. A write that fails is logged and dropped: the log is
 * for operators, and delivery does not wait on it. Each webhook's log is pruned to its newest
 * `logKeep` events every `logKeep / 10` (1 to 100) new events it gets from this process.
 */
export class DeliveryLog {
  private readonly added = new Map<number, number>();
  constructor(private readonly deps: WebhookDeps) {}

  private get every() {
    return Math.max(1, Math.min(100, Math.floor(this.deps.opts.logKeep / 10)));
  }

  async record(
    webhookId: number,
    ev: EventToSend,
    status: DeliveryStatus,
    r: DeliveryResult,
    reason?: string,
  ): Promise<void> {
    const { store, opts, log } = this.deps;
    try {
      const { inserted } = await store.recordAttempt({
        webhookId,
        seq: ev.seq,
        eventId: ev.eventId,
        type: ev.type,
        node: ev.node,
        status,
        httpStatus: r.status,
        error: reason ?? (r.ok ? null : r.error),
        durationMs: r.durationMs,
      });
      if (!inserted) return;
      const n = (this.added.get(webhookId) ?? 0) + 1;
      this.added.set(webhookId, n);
      if (n % this.every === 0) await store.pruneDeliveries(webhookId, opts.logKeep);
    } catch (err) {
      log.warn({ err, webhook: webhookId, seq: ev.seq, status }, 'webhook delivery log not written');
    }
  }
}
