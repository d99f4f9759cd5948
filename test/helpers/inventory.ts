import type { Bus } from '../../shared/bus/bus.js';
import { type InventoryOp, inventoryApi } from '../../shared/catalogue/index.js';

/** Calls an inventory API operation over the bus, as the gateway does. */
export const op = <T = any>(bus: Bus, name: InventoryOp, args: Record<string, unknown> = {}): Promise<T> =>
  bus.request(inventoryApi, { op: name, args }, { timeoutMs: 20_000 }) as Promise<T>;

export async function until<T>(what: string, f: () => T | Promise<T>, ms = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
