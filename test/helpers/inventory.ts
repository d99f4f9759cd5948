import type { Bus } from '../../shared/bus/bus.js';
import { type InventoryOp, type InventoryOpRequest, inventoryOpRpcs } from '../../shared/catalogue/index.js';

/** Calls an operation of inventory's operator API over the bus, as the gateway does; typed by the catalogue. */
export const op = <K extends InventoryOp>(bus: Bus, name: K, args: InventoryOpRequest<K>) =>
  bus.request(inventoryOpRpcs[name], args, { timeoutMs: 20_000 });

/** Waits for `f` to return something truthy, polling every `everyMs`; fails naming `what`. */
export async function until<T>(
  what: string,
  f: () => T | Promise<T>,
  ms = 20_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
