import type { Subscription } from '@nats-io/transport-node';
import type { Bus } from '../../shared/bus/bus.js';
import { dhcpMessages, type Reservation, roleRun } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import { lagging } from './domain/converge.js';
import { intToIp, ipToInt } from './domain/ipv4.js';
import type { ServedView } from './domain/view.js';
import { readOwners } from './handlers.js';
import type { LeaseWriter } from './leases.js';
import type { Projection } from './projection.js';

export interface RpcDeps {
  bus: Bus;
  database: Database;
  projection: Projection;
  writer: LeaseWriter;
  log: Logger;
  stats: () => import('zod').input<typeof dhcpMessages.stats.response>;
  /** How long a dhcp-database run waits for the reservations to catch up. */
  convergeMs: number;
}

function reservations(view: ServedView, projection: Projection): Reservation[] {
  const out: Reservation[] = [];
  for (const r of view.byMac.values()) {
    const entries = [...r.addresses.entries()];
    const first = entries[0];
    out.push({
      mac: r.mac,
      nodeId: r.nodeId,
      node: r.node,
      hostname: r.hostname,
      address: first ? intToIp(first[1].address) : null,
      networkId: first ? first[0] : null,
      network: first ? (projection.networkById(first[0])?.name ?? null) : null,
      bootenv: r.bootenv,
    });
  }
  return out.sort((a, b) => a.nodeId - b.nodeId || (a.mac < b.mac ? -1 : 1));
}

export function serveRpcs(d: RpcDeps): Subscription[] {
  const { bus, database, projection, writer, log } = d;
  return [
    bus.serve(dhcpMessages.leaseList, async (q) => {
      let networkId: number | undefined;
      if (q.network !== undefined) {
        const byName = [...projection.view().networks].find(
          (n) => n.name === q.network || String(n.id) === q.network,
        );
        if (!byName) throw new NotFoundError(`no managed network ${q.network}`, { field: 'network' });
        networkId = byName.id;
      }
      if (q.after !== undefined && ipToInt(q.after) === null)
        throw new ValidationError('after must be an IPv4 address (the last one of the previous page)', {
          field: 'after',
        });
      const rows = await store.listLeases(database.db, {
        ...(q.state ? { state: q.state } : {}),
        ...(q.mac ? { mac: q.mac } : {}),
        ...(networkId !== undefined ? { networkId } : {}),
        ...(q.nodeId !== undefined ? { nodeId: q.nodeId } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
        limit: q.limit,
      });
      const leases = rows.map(writer.summary);
      return { leases, next: rows.length === q.limit ? (rows.at(-1)?.address ?? null) : null };
    }),
    bus.serve(dhcpMessages.reservationList, async (q) => ({
      reservations: reservations(projection.view(), projection).filter(
        (r) => (q.nodeId === undefined || r.nodeId === q.nodeId) && (q.mac === undefined || r.mac === q.mac),
      ),
    })),
    bus.serve(dhcpMessages.leaseRelease, async (q) => {
      if (ipToInt(q.address) === null)
        throw new ValidationError('address must be an IPv4 address', { field: 'address' });
      const row = await writer.operatorRelease(q.address);
      if (!row) throw new NotFoundError(`no bound lease for ${q.address}`, { field: 'address' });
      log.info({ address: q.address, mac: row.mac }, 'dhcp lease released by the operator');
      return writer.summary(row);
    }),
    bus.serve(dhcpMessages.stats, async () => d.stats()),
    // dhcp-database: done once the served reservations match the owners' nodes and addresses (the point
    // the OS install waits on). Read-only, so running it twice is harmless.
    bus.serve(roleRun['dhcp-db'], async (req) => {
      const deadline = Date.now() + d.convergeMs;
      const own = projection.nodeById(req.nodeId);
      const scope = own && !own.admin ? req.nodeId : null;
      let waiting: string[] = [];
      // The owners' truth is read once and again every 5 s (it may move on); in between only this
      // instance's served view is compared, every 250 ms, so a long wait costs few full reads.
      let truth: Parameters<typeof lagging>[1] | null = null;
      let readAt = 0;
      for (let round = 0; ; round++) {
        if (!truth || Date.now() - readAt >= 5000) {
          readAt = Date.now();
          const { all } = await readOwners(bus, log);
          if (!all.nodes || !all.allocations)
            throw new UnavailableError('inventory or network-ipam did not answer');
          const addresses = new Map<number, Map<number, string>>();
          for (const a of all.allocations) {
            if (a.family !== 'ipv4' || a.category === 'unmanaged') continue;
            const m = addresses.get(a.nodeId) ?? new Map<number, string>();
            m.set(a.networkId, a.address.split('/')[0]!);
            addresses.set(a.nodeId, m);
          }
          truth = { nodes: all.nodes, addresses };
        }
        waiting = lagging(projection.view(), truth, scope);
        if (waiting.length === 0) {
          const count = projection.view().byMac.size;
          log.info(
            { role: req.role, node: req.nodeId, runId: req.runId, reservations: count, rounds: round + 1 },
            'dhcp role run converged',
          );
          return {
            wall: { dhcp: { reservations: count } },
            log: `dhcp: ${count} reservation(s) match inventory and network-ipam\n`,
          };
        }
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new UnavailableError(
        `dhcp-db reservations have not caught up after ${Math.round(d.convergeMs / 1000)} s; waiting for: ${waiting.slice(0, 5).join('; ')}${waiting.length > 5 ? ` (and ${waiting.length - 5} more)` : ''}`,
      );
    }),
  ];
}
