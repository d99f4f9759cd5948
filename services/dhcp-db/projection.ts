import type { AllocationSummary, NetworkDetail, NodeSummary } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import type { Logger } from '../../shared/log.js';
import * as store from './db/store.js';
import { buildView, type ServedView } from './domain/view.js';

type Kind = 'nodes' | 'allocations' | 'networks';
interface Rows {
  nodes: Map<number, NodeSummary>;
  allocations: Map<number, AllocationSummary>;
  networks: Map<number, NetworkDetail>;
}

/**
 * The projection of nodes, allocations and networks (PostgreSQL is the truth; newest event wins, like
 * dns-db's) and the served view built from it. Every write commits first, then updates this instance's
 * rows; other instances hear of it through NOTIFY and reload. The view is rebuilt lazily, so a burst of
 * events costs one rebuild, and the next packet after a commit already sees the change.
 */
export function createProjection(deps: {
  database: Database;
  instance: string;
  log: Logger;
  changed?: () => void;
}) {
  const { database, log } = deps;
  const rows: Rows = { nodes: new Map(), allocations: new Map(), networks: new Map() };
  let view: ServedView = buildView({ nodes: [], allocations: [], networks: [] });
  let dirty = true;
  let version = 0;

  const touch = () => {
    dirty = true;
    version++;
    deps.changed?.();
  };

  function setRow(kind: Kind, id: number, body: unknown, deleted: boolean) {
    const map = rows[kind] as Map<number, unknown>;
    if (deleted) map.delete(id);
    else map.set(id, body);
  }

  async function put(
    kind: Kind,
    id: number,
    body: NodeSummary | AllocationSummary | NetworkDetail,
    time: Date,
    deleted: boolean,
    nodeId?: number,
  ) {
    const applied = await store.writeProjection(database, deps.instance, (tx) =>
      store.putRow(tx, kind, { id, body, ...(nodeId === undefined ? {} : { nodeId }) }, time, deleted),
    );
    if (applied) {
      setRow(kind, id, body, deleted);
      touch();
    }
    return applied;
  }

  async function reload() {
    const r = await store.loadProjection(database.db);
    rows.nodes = new Map(r.nodes.map((n) => [n.id, n]));
    rows.allocations = new Map(r.allocations.map((a) => [a.id, a]));
    rows.networks = new Map(r.networks.map((n) => [n.id, n]));
    touch();
  }

  return {
    reload,
    version: () => version,
    view(): ServedView {
      if (dirty) {
        view = buildView({
          nodes: [...rows.nodes.values()],
          allocations: [...rows.allocations.values()],
          networks: [...rows.networks.values()],
        });
        dirty = false;
      }
      return view;
    },
    node: (n: NodeSummary, time: Date, deleted: boolean) => put('nodes', n.id, n, time, deleted),
    allocation: (a: AllocationSummary, time: Date, deleted: boolean) =>
      put('allocations', a.id, a, time, deleted, a.nodeId),
    network: (n: NetworkDetail, time: Date, deleted: boolean) => put('networks', n.id, n, time, deleted),
    nodeById: (id: number) => rows.nodes.get(id),
    networkById: (id: number) => rows.networks.get(id),

    /**
     * Replaces the projection with the owners' state as of `time` (taken before it was read). An owner
     * that did not answer (its part missing) keeps what the events told us.
     */
    async resync(all: Partial<store.ProjectionRows>, time: Date) {
      const gone = await store.writeProjection(database, deps.instance, async (tx) => {
        const out: Partial<Record<Kind, number>> = {};
        for (const kind of ['nodes', 'allocations', 'networks'] as const) {
          const list = all[kind];
          if (!list) continue;
          for (const row of list)
            await store.putRow(
              tx,
              kind,
              { id: row.id, body: row, ...('nodeId' in row ? { nodeId: row.nodeId } : {}) },
              time,
              false,
            );
          out[kind] = await store.tombstoneExcept(
            tx,
            kind,
            list.map((r) => r.id),
            time,
          );
        }
        return out;
      });
      await reload();
      log.info(
        {
          nodes: all.nodes?.length ?? null,
          allocations: all.allocations?.length ?? null,
          networks: all.networks?.length ?? null,
          gone,
        },
        'dhcp projection re-synced',
      );
      return gone;
    },
  };
}
export type Projection = ReturnType<typeof createProjection>;
