import type { LeaseRow, LeaseState } from '../db/store.js';
import { ipToInt } from '../domain/ipv4.js';
import type { NetworkView, PoolRange, ServedView } from '../domain/view.js';

/** A lease as the server keeps it in memory; PostgreSQL is the truth, this is the fast index over it. */
export interface MemLease {
  address: number;
  mac: string;
  networkId: number;
  range: string;
  state: LeaseState;
  /** ms since the epoch: end of a bound lease, or of a declined address's quarantine. */
  expiresAt: number;
}

/**
 * Leases and offers in memory, so DISCOVERs are answered without a database round trip. Only an ACK
 * needs the database: the lease is written (and refused there if another instance took the address)
 * before the ACK leaves. Offers are held here for `offerHoldMs` so two clients are not offered one
 * address by this instance.
 */
export class LeaseTable {
  private readonly byAddr = new Map<number, MemLease>();
  private readonly byMac = new Map<string, MemLease[]>();
  private readonly offers = new Map<number, { mac: string; until: number }>();
  private readonly offerOf = new Map<string, number>();
  /** Where the next search for a free address starts, per range id. */
  private readonly cursors = new Map<number, number>();

  constructor(private readonly now: () => number) {}

  load(rows: LeaseRow[]) {
    for (const r of rows) this.put(fromRow(r));
  }

  put(l: MemLease) {
    const old = this.byAddr.get(l.address);
    if (old) this.unlinkMac(old);
    this.byAddr.set(l.address, l);
    const list = this.byMac.get(l.mac);
    if (list) list.push(l);
    else this.byMac.set(l.mac, [l]);
  }

  /** Stores what the database now says about one address (after a conflict, an expiry, a release). */
  apply(row: LeaseRow) {
    this.put(fromRow(row));
  }

  private unlinkMac(l: MemLease) {
    const list = this.byMac.get(l.mac);
    if (!list) return;
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byMac.delete(l.mac);
  }

  get(address: number): MemLease | undefined {
    return this.byAddr.get(address);
  }

  /** Whether another MAC holds `address` now: a live lease, a quarantine, or a live offer. */
  heldByOther(address: number, mac: string): boolean {
    const now = this.now();
    const l = this.byAddr.get(address);
    if (l && l.expiresAt > now && (l.state === 'declined' || (l.state === 'bound' && l.mac !== mac)))
      return true;
    const o = this.offers.get(address);
    return o !== undefined && o.until > now && o.mac !== mac;
  }

  /** The MAC's most recent lease on a network that is still usable by it (live, or ended but not retaken). */
  leaseOf(mac: string, networkId: number): MemLease | undefined {
    const list = this.byMac.get(mac);
    if (!list) return undefined;
    let best: MemLease | undefined;
    for (const l of list) {
      if (l.networkId !== networkId || l.state === 'declined') continue;
      if (!best || l.expiresAt > best.expiresAt) best = l;
    }
    return best;
  }

  boundOf(mac: string): MemLease[] {
    const now = this.now();
    return (this.byMac.get(mac) ?? []).filter((l) => l.state === 'bound' && l.expiresAt > now);
  }

  offer(address: number, mac: string, holdMs: number) {
    const prev = this.offerOf.get(mac);
    if (prev !== undefined && prev !== address) this.offers.delete(prev);
    this.offers.set(address, { mac, until: this.now() + holdMs });
    this.offerOf.set(mac, address);
  }

  offeredTo(mac: string): number | undefined {
    const a = this.offerOf.get(mac);
    if (a === undefined) return undefined;
    const o = this.offers.get(a);
    return o && o.mac === mac && o.until > this.now() ? a : undefined;
  }

  forgetOffer(mac: string) {
    const a = this.offerOf.get(mac);
    if (a === undefined) return;
    this.offerOf.delete(mac);
    if (this.offers.get(a)?.mac === mac) this.offers.delete(a);
  }

  /** After a MAC was bound to `address`: its other live leases on that network were released. */
  bound(l: MemLease) {
    for (const other of this.byMac.get(l.mac) ?? [])
      if (other.networkId === l.networkId && other.address !== l.address && other.state === 'bound')
        other.state = 'released';
    this.put(l);
    this.forgetOffer(l.mac);
  }

  /**
   * The next free address of an anonymous range for `mac`: not leased, quarantined or offered to
   * another MAC, not reserved for a node, not the network's own addresses (routers, server, subnet
   * edges). Scans from a cursor, so a busy pool is not searched from its start every time.
   */
  freeAddress(view: ServedView, net: NetworkView, mac: string): { address: number; range: PoolRange } | null {
    for (const range of net.ranges) {
      if (!range.allowAnon) continue;
      const size = range.last - range.first + 1;
      let at = this.cursors.get(range.id) ?? range.first;
      if (at < range.first || at > range.last) at = range.first;
      for (let i = 0; i < size; i++) {
        const a = at;
        at = at === range.last ? range.first : at + 1;
        if (!this.usable(view, net, a, mac)) continue;
        this.cursors.set(range.id, at);
        return { address: a, range };
      }
    }
    return null;
  }

  usable(view: ServedView, net: NetworkView, a: number, mac: string): boolean {
    if (a === net.subnet.base || a === net.subnet.last) return false;
    if (view.reserved.has(a) || net.routers.includes(a)) return false;
    return !this.heldByOther(a, mac);
  }

  /** Drops ended leases and stale offers from memory (the database keeps their rows). */
  prune() {
    const now = this.now();
    for (const [a, o] of this.offers)
      if (o.until <= now) {
        this.offers.delete(a);
        if (this.offerOf.get(o.mac) === a) this.offerOf.delete(o.mac);
      }
    // Ended leases are kept a while so a returning MAC gets its old address back.
    const keepEndedMs = 24 * 3600 * 1000;
    for (const [a, l] of this.byAddr)
      if (l.expiresAt + keepEndedMs <= now) {
        this.byAddr.delete(a);
        this.unlinkMac(l);
      }
  }

  counts() {
    const now = this.now();
    let bound = 0;
    let declined = 0;
    for (const l of this.byAddr.values()) {
      if (l.expiresAt <= now) continue;
      if (l.state === 'bound') bound++;
      else if (l.state === 'declined') declined++;
    }
    return { bound, declined, offers: this.offers.size };
  }
}

export function fromRow(r: LeaseRow): MemLease {
  return {
    address: ipToInt(r.address) ?? 0,
    mac: r.mac,
    networkId: r.networkId,
    range: r.range,
    state: r.state,
    expiresAt: Date.parse(r.expiresAt),
  };
}
