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

/**
 * The lease writes behind the engine: binds are group-committed (many REQUESTs, one transaction, one
 * fsync), each lease durable before its ACK leaves; releases, declines and expiries are written one by
 * one. Every change leaves with its event through the outbox and is mirrored into the memory table.
 */
export function createLeaseWriter(deps: {
  database: Database;
  bus: Bus;
  table: LeaseTable;
  projection: Projection;
  log: Logger;
  declineHoldMs: number;
  now: () => number;
  /** Wakes the outbox relay after a commit (no NOTIFY: it would serialise the group commits). */
  kick: () => void;
}) {
  const { database, bus, table, projection, log, kick } = deps;

  const summary = (r: store.LeaseRow): LeaseSummary => ({
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
  });
  const entry = (key: EventKey, r: store.LeaseRow): OutboxEntry => {
    const def = dhcpMessages[key];
    return { subject: def.subject, envelope: bus.envelope(wireType(def), { lease: summary(r) }, {}) };
  };
  const logLease = (r: store.LeaseRow, what: string) =>
    log.info(
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

  const bindBatch = createBatcher<store.LeaseWrite, boolean>({
    maxBatch: 2000,
    maxInFlight: 2,
    send: async (items) => {
      // One address twice in one statement would fail it; the later request loses and is NAKed.
      const seen = new Set<string>();
      const unique = items.filter((i) => {
        if (seen.has(i.address)) return false;
        seen.add(i.address);
        return true;
      });
      // Known from memory: which binds are renewals (no event), and which MACs leave another address.
      const renewal = new Set<string>();
      const release: { address: string; mac: string }[] = [];
      for (const i of unique) {
        const v = ipToInt(i.address) ?? 0;
        const held = table.get(v);
        if (held && held.mac === i.mac && held.state === 'bound' && held.expiresAt > deps.now())
          renewal.add(i.address);
        for (const other of table.boundOf(i.mac))
          if (other.networkId === i.networkId && other.address !== v)
            release.push({ address: intToIp(other.address), mac: i.mac });
      }
      const started = performance.now();
      const bound = await store.bindLeases(database, unique, release, (rows, released) => [
        ...rows
          .filter((r) => !renewal.has(r.address))
          .map((r) => {
            logLease(r, 'dhcp lease acked');
            return entry('leaseAcked', r);
          }),
        ...released.map((r) => {
          logLease(r, 'dhcp lease released (client moved)');
          return entry('leaseReleased', r);
        }),
      ]);
      kick();
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
      // Refused addresses: another instance holds them; learn who, so they are not offered again.
      const refused = unique.filter((i) => !bound.has(i.address));
      for (const i of refused) {
        const row = await store.getLease(database.db, i.address);
        if (row) table.apply(row);
        log.warn(
          { mac: i.mac, address: i.address, holder: row?.mac ?? null },
          'dhcp lease refused: address held',
        );
      }
      return results;
    },
  });

  const end = async (address: string, mac: string | null, state: 'released' | 'declined', until: Date) => {
    const row = await store.endLease(database, { address, mac, state, until }, (r) => [
      entry(state === 'declined' ? 'leaseDeclined' : 'leaseReleased', r),
    ]);
    if (row) {
      table.apply(row);
      logLease(row, state === 'declined' ? 'dhcp lease declined' : 'dhcp lease released');
    }
    return row;
  };

  return {
    bind: bindBatch,
    decline: async (address: string, mac: string) =>
      (await end(address, mac, 'declined', new Date(deps.now() + deps.declineHoldMs))) !== undefined,
    release: async (address: string, mac: string) =>
      (await end(address, mac, 'released', new Date(deps.now()))) !== undefined,
    /** The operator's release: whoever holds it. */
    operatorRelease: (address: string) => end(address, null, 'released', new Date(deps.now())),
    async expire() {
      let total = 0;
      for (let round = 0; round < 20; round++) {
        const rows = await store.expireDue(database, 1000, (list) =>
          list.map((r) => entry('leaseExpired', r)),
        );
        for (const r of rows) {
          table.put(fromRow(r));
          logLease(r, 'dhcp lease expired');
        }
        total += rows.length;
        if (rows.length < 1000) break;
      }
      table.prune();
      return total;
    },
    summary,
  };
}
export type LeaseWriter = ReturnType<typeof createLeaseWriter>;
