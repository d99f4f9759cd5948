import { createBatcher } from '../../shared/batcher.js';
import type { Bus } from '../../shared/bus/bus.js';
import { dhcpMessages, type LeaseSummary, wireType } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import type { OutboxEntry } from '../../shared/db/outbox.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import { intToIp, ipToInt } from './domain/ipv4.js';
import type { Projection } from './projection.js';
import { fromRow, type LeaseTable } from './server/lease-table.js';

type EventKey = 'leaseAcked' | 'leaseReleased' | 'leaseExpired' | 'leaseDeclined';

interface LeaseWriterDeps {
  database: Database;
  bus: Bus;
  table: LeaseTable;
  projection: Projection;
  log: Logger;
  declineHoldMs: number;
  now: () => number;
  /** Wakes the outbox relay after a commit (no NOTIFY: it would serialise the group commits). */
  kick: () => void;
}

/** One address twice in one statement would fail it: the later request loses (and is NAKed). */
function firstPerAddress(items: store.LeaseWrite[]): store.LeaseWrite[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    if (seen.has(i.address)) return false;
    seen.add(i.address);
    return true;
  });
}

/**
 * The lease writes behind the engine: binds are group-committed (many REQUESTs, one transaction, one
 * fsync), each lease durable before its ACK leaves; releases, declines and expiries are written one by
 * one. Every change leaves with its event through the outbox and is mirrored into the memory table.
 * Its functions may be passed on unbound.
 */
export class LeaseWriter {
  /** Binds a lease; answers whether it was written (false: the address is held, NAK). */
  readonly bind = createBatcher<store.LeaseWrite, boolean>({
    maxBatch: 2000,
    maxInFlight: 2,
    send: (items) => this.#writeBinds(items),
  });

  constructor(private readonly deps: LeaseWriterDeps) {}

  readonly decline = async (address: string, mac: string) =>
    (await this.#end(address, mac, 'declined', new Date(this.deps.now() + this.deps.declineHoldMs))) !==
    undefined;

  readonly release = async (address: string, mac: string) =>
    (await this.#end(address, mac, 'released', new Date(this.deps.now()))) !== undefined;

  /** The operator's release: whoever holds it. */
  readonly operatorRelease = (address: string) =>
    this.#end(address, null, 'released', new Date(this.deps.now()));

  readonly summary = (r: store.LeaseRow): LeaseSummary => {
    const { projection } = this.deps;
    return {
      address: r.address,
      mac: r.mac,
      nodeId: r.nodeId,
      node: r.nodeId === null ? null : (projection.nodeById(r.nodeId)?.name ?? null),
      networkId: r.networkId,
      network: projection.networkById(r.networkId)?.name ?? String(r.networkId),
      range: r.range,
      state: r.state,
      expiresAt: new Date(r.expiresAt).toISOString(),
      hostname: r.hostname,
      interface: r.iface,
      relay: r.relay,
      updatedAt: new Date(r.updatedAt).toISOString(),
    };
  };

  /** Expires due leases, a thousand at a time (at most 20 rounds); answers how many. */
  readonly expire = async (): Promise<number> => {
    let total = 0;
    for (let round = 0; round < 20; round++) {
      const rows = await store.expireDue(this.deps.database, 1000, (list) =>
        list.map((r) => this.#entry('leaseExpired', r)),
      );
      for (const r of rows) {
        this.deps.table.put(fromRow(r));
        this.#log(r, 'dhcp lease expired');
      }
      total += rows.length;
      if (rows.length < 1000) break;
    }
    this.deps.table.prune();
    return total;
  };

  #entry(key: EventKey, r: store.LeaseRow): OutboxEntry {
    const def = dhcpMessages[key];
    return {
      subject: def.subject,
      envelope: this.deps.bus.envelope(wireType(def), { lease: this.summary(r) }, {}),
    };
  }

  #log(r: store.LeaseRow, what: string): void {
    this.deps.log.info(
      {
        mac: r.mac,
        address: r.address,
        node: r.nodeId,
        network: r.networkId,
        state: r.state,
        iface: r.iface,
        relay: r.relay,
      },
      what,
    );
  }

  /** Known from memory: which binds are renewals (no event), and which MACs leave another address. */
  #plan(unique: store.LeaseWrite[]) {
    const { table, now } = this.deps;
    const renewal = new Set<string>();
    const release: { address: string; mac: string }[] = [];
    for (const i of unique) {
      const v = ipToInt(i.address) ?? 0;
      const held = table.get(v);
      if (held && held.mac === i.mac && held.state === 'bound' && held.expiresAt > now())
        renewal.add(i.address);
      for (const other of table.boundOf(i.mac))
        if (other.networkId === i.networkId && other.address !== v)
          release.push({ address: intToIp(other.address), mac: i.mac });
    }
    return { renewal, release };
  }

  async #writeBinds(items: store.LeaseWrite[]): Promise<boolean[]> {
    const { database, table, log } = this.deps;
    const unique = firstPerAddress(items);
    const { renewal, release } = this.#plan(unique);
    const started = performance.now();
    const bound = await store.bindLeases(database, unique, release, (rows, released) => [
      ...rows
        .filter((r) => !renewal.has(r.address))
        .map((r) => {
          this.#log(r, 'dhcp lease acked');
          return this.#entry('leaseAcked', r);
        }),
      ...released.map((r) => {
        this.#log(r, 'dhcp lease released (client moved)');
        return this.#entry('leaseReleased', r);
      }),
    ]);
    this.deps.kick();
    log.debug(
      { leases: unique.length, bound: bound.size, ms: Math.round(performance.now() - started) },
      'dhcp leases committed',
    );
    const kept = new Set(unique);
    const results = items.map((i) => kept.has(i) && bound.has(i.address));
    for (const i of unique) {
      if (bound.has(i.address))
        table.bound({
          address: ipToInt(i.address) ?? 0,
          mac: i.mac,
          networkId: i.networkId,
          range: i.range,
          state: 'bound',
          expiresAt: i.expiresAt.getTime(),
        });
    }
    await this.#learnHolders(unique.filter((i) => !bound.has(i.address)));
    return results;
  }

  /** Refused addresses: another instance holds them; learn who, so they are not offered again. */
  async #learnHolders(refused: store.LeaseWrite[]): Promise<void> {
    for (const i of refused) {
      const row = await store.getLease(this.deps.database.db, i.address);
      if (row) this.deps.table.apply(row);
      this.deps.log.warn(
        { mac: i.mac, address: i.address, holder: row?.mac ?? null },
        'dhcp lease refused: address held',
      );
    }
  }

  async #end(address: string, mac: string | null, state: 'released' | 'declined', until: Date) {
    const row = await store.endLease(this.deps.database, { address, mac, state, until }, (r) => [
      this.#entry(state === 'declined' ? 'leaseDeclined' : 'leaseReleased', r),
    ]);
    if (row) {
      this.deps.table.apply(row);
      this.#log(row, state === 'declined' ? 'dhcp lease declined' : 'dhcp lease released');
    }
    return row;
  }
}

export function createLeaseWriter(deps: LeaseWriterDeps): LeaseWriter {
  return new LeaseWriter(deps);
}
