import type { NodeSummary } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { queryText } from '../../shared/db/prepared.js';
import { normaliseMac } from '../../shared/mac.js';

/**
 * The nodes the provisioner serves: a projection of inventory's node events (stored, newest event
 * wins) indexed by MAC and name, and which client address last spoke for which MAC (from DHCP leases
 * and script fetches), so a kernel fetched over HTTP or TFTP is put on the right node's timeline.
 */
export function createRegistry(database: Database) {
  let byId = new Map<number, NodeSummary>();
  let macIndex = new Map<string, NodeSummary>();
  let nameIndex = new Map<string, NodeSummary>();
  const clients = new Map<string, string>();

  const reindex = () => {
    macIndex = new Map();
    nameIndex = new Map();
    for (const n of byId.values()) {
      nameIndex.set(n.name, n);
      for (const m of n.macs) {
        const mac = normaliseMac(m);
        if (mac) macIndex.set(mac, n);
      }
    }
  };

  return {
    async load() {
      const rows = await queryText<{ summary: NodeSummary }>(
        database.db,
        'select summary from provisioner.nodes where not deleted',
        [],
      );
      byId = new Map(rows.map((r) => [r.summary.id, r.summary]));
      reindex();
    },
    /** Stores a node event unless newer state is already stored; true when applied. */
    async put(n: NodeSummary, time: Date, deleted: boolean): Promise<boolean> {
      const rows = await queryText<{ id: number }>(
        database.db,
        `insert into provisioner.nodes (id, summary, deleted, source_time) values ($1, $2::jsonb, $3, $4)
         on conflict (id) do update set summary = excluded.summary, deleted = excluded.deleted,
           source_time = excluded.source_time
         where provisioner.nodes.source_time <= excluded.source_time returning id`,
        [n.id, JSON.stringify(n), deleted, time.toISOString()],
      );
      if (rows.length === 0) return false;
      if (deleted) byId.delete(n.id);
      else byId.set(n.id, n);
      reindex();
      return true;
    },
    byMac: (mac: string) => macIndex.get(mac),
    byName: (name: string) => nameIndex.get(name),
    byId: (id: number) => byId.get(id),
    sawClient(address: string, mac: string) {
      if (clients.size > 100_000) clients.clear();
      clients.set(address, mac);
    },
    macOfClient: (address: string) => clients.get(address) ?? null,
    size: () => byId.size,
  };
}
export type NodeRegistry = ReturnType<typeof createRegistry>;
