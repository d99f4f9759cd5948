import type { Bus } from '../../shared/bus/bus.js';
import { dhcpMessages } from '../../shared/catalogue/index.js';
import type { NodeRegistry } from './registry.js';

/**
 * Waits until both boot databases serve a node's bootenv: the provisioner's own projection (woken at
 * once by its node events, through `wake`) and dhcp-db's reservation (asked again on a backoff, as
 * dhcp-db announces no reservation changes).
 */
export class BootConvergence {
  /** Runs waiting, by node: what each still waits for (health detail, and tests). */
  readonly #waiting = new Map<number, { bootenv: string; missing: string[]; since: string }>();
  #waiters: (() => void)[] = [];

  constructor(
    private readonly bus: Bus,
    private readonly registry: NodeRegistry,
    private readonly timeoutMs: number,
  ) {}

  waiting() {
    return Object.fromEntries(this.#waiting);
  }

  /** The provisioner's projection changed: every waiting run looks again. */
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** What is not yet serving `bootenv` for the node (empty when both are). */
  async pending(nodeId: number, bootenv: string): Promise<string[]> {
    const missing: string[] = [];
    const mine = this.registry.byId(nodeId)?.bootenv ?? null;
    if (mine !== bootenv) missing.push(`the provisioner serves bootenv ${mine ?? 'none'}`);
    const dhcp = await this.bus
      .request(dhcpMessages.reservationList, { nodeId }, { timeoutMs: 5000 })
      .then((r) => r.reservations)
      .catch((err: Error) => err);
    if (dhcp instanceof Error) missing.push(`dhcp-db does not answer (${dhcp.message})`);
    else if (dhcp.length === 0) missing.push('dhcp-db has no reservation for the node');
    else {
      const stale = dhcp.find((r) => r.bootenv !== bootenv);
      if (stale) missing.push(`dhcp-db serves bootenv ${stale.bootenv} for ${stale.mac}`);
    }
    return missing;
  }

  /** Resolves with the milliseconds waited; throws naming what is missing after the bound. */
  async until(nodeId: number, bootenv: string): Promise<number> {
    const started = Date.now();
    const deadline = started + this.timeoutMs;
    let backoff = 100;
    try {
      for (;;) {
        const missing = await this.pending(nodeId, bootenv);
        if (missing.length === 0) return Date.now() - started;
        this.#waiting.set(nodeId, { bootenv, missing, since: new Date(started).toISOString() });
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(
            `boot databases did not converge on bootenv ${bootenv} within ${this.timeoutMs / 1000} s: ${missing.join('; ')}; the node was not rebooted`,
          );
        await this.#nap(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, 2000);
      }
    } finally {
      this.#waiting.delete(nodeId);
    }
  }

  /** Sleeps `ms`, or less when woken. */
  #nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
