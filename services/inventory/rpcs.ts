import type { Bus } from '../../shared/bus/bus.js';
import { causedBy, type Lineage } from '../../shared/bus/envelope.js';
import { inventoryAnnealRpcs, inventoryRpcs } from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { TxRunner } from './api.js';
import { bind } from './engine/binding.js';
import { defineRole } from './engine/catalogue.js';
import { deploymentId, nodeId, updateNode, verifyCredential } from './engine/nodes.js';
import { annealStatus, candidates, finishRuns, startRuns } from './engine/runs.js';
import type { GraphTx } from './engine/tx.js';
import { deleteAttribsOfRole } from './store/attribs.js';
import { deleteDeploymentRolesOfRole } from './store/deployments.js';
import { countNoderolesOfRole } from './store/noderoles.js';
import { nodeSummaries } from './store/nodes.js';
import { deleteRoleRow, roleIdNamed } from './store/roles.js';

/** The services' own RPCs on nodes and roles (not the operator API: that is `serveOperations`). */
export function serveNodeRpcs(bus: Bus, tx: TxRunner): void {
  const read = <T>(fn: (g: GraphTx) => Promise<T>) => tx(fn, {}, true);
  bus.serve(inventoryRpcs.getNode, (req) =>
    read(async (g) => {
      const n = await g.nodeSummary(await nodeId(g, req.node));
      if (!n) throw new NotFoundError(`no node ${req.node}`, { field: 'node' });
      return n;
    }),
  );
  bus.serve(inventoryRpcs.listNodes, (req) => read(async (g) => ({ nodes: await nodeSummaries(g, req) })));
  bus.serve(inventoryRpcs.verifyNodeCredential, (req) =>
    read(async (g) => {
      const id = await verifyCredential(g, req.node, req.secret);
      return { valid: id !== null, nodeId: id };
    }),
  );
  bus.serve(inventoryRpcs.setAlive, (req, env) =>
    tx(
      async (g) => {
        const id = await nodeId(g, req.node);
        const changed = await updateNode(g, id, { alive: req.alive }, req.reason);
        return { node: (await g.nodeSummary(id))!, changed: changed.length > 0 };
      },
      causedBy(env),
      false,
    ),
  );
  bus.serve(inventoryRpcs.defineRole, (req, env) =>
    tx(async (g) => ({ id: await defineRole(g, req), name: req.name }), causedBy(env), false),
  );
  bus.serve(inventoryRpcs.deleteRole, (req, env) =>
    tx(
      async (g) => {
        const roleId = await roleIdNamed(g, req.name);
        if (roleId === undefined) return { deleted: false };
        const used = await countNoderolesOfRole(g, roleId);
        if (used)
          throw new ConflictError(`role ${req.name} is still bound to ${used} nodes`, {
            rule: 'bound roles cannot be deleted',
          });
        await deleteAttribsOfRole(g, roleId);
        await deleteDeploymentRolesOfRole(g, roleId);
        await deleteRoleRow(g, roleId);
        return { deleted: true };
      },
      causedBy(env),
      false,
    ),
  );
  bus.serve(inventoryRpcs.bindRole, (req, env) =>
    tx(
      async (g) => {
        const node = await nodeId(g, req.node);
        const dep =
          req.deployment !== undefined
            ? await deploymentId(g, req.deployment)
            : (await g.nodeSummary(node))!.deploymentId;
        return g.noderoleSummary(await bind(g, req.role, node, dep));
      },
      causedBy(env),
      false,
    ),
  );
}

/**
 * A batch runs in one transaction and a few statements (rows locked in noderole order, a stable lock
 * order between batches). If the transaction fails as a whole, each item is tried on its own, so one
 * bad item fails alone.
 */
async function inBatch<Q extends { noderoleId: number }, R>(
  tx: TxRunner,
  log: Logger,
  items: Q[],
  many: (g: GraphTx, items: Q[]) => Promise<R[]>,
  lineage: Lineage,
): Promise<({ result: R } | { error: string })[]> {
  try {
    return (await tx((g) => many(g, items), lineage, false)).map((result) => ({ result }));
  } catch (err) {
    log.warn({ err, items: items.length }, 'batch transaction failed; trying its items one by one');
    return Promise.all(
      items.map((item) =>
        tx(async (g) => (await many(g, [item]))[0] as R, lineage, false).then(
          (result) => ({ result }),
          (e: unknown) => ({
            error: `noderole ${item.noderoleId}: ${e instanceof Error ? e.message : String(e)}`,
          }),
        ),
      ),
    );
  }
}

/** The annealer's RPCs: what can run, starting and finishing runs in batches, and the anneal's status. */
export function serveAnnealRpcs(
  bus: Bus,
  tx: TxRunner,
  log: Logger,
  opts: { adminHostChanges: boolean },
): void {
  bus.serve(inventoryAnnealRpcs.runnable, (req) =>
    tx(async (g) => ({ candidates: await candidates(g, req.limit, req.excludeNodeIds) }), {}, true),
  );
  bus.serve(inventoryAnnealRpcs.startRuns, async (req, env) => ({
    results: await inBatch(tx, log, req.runs, (g, runs) => startRuns(g, runs, opts), causedBy(env)),
  }));
  bus.serve(inventoryAnnealRpcs.finishRuns, async (req, env) => ({
    results: await inBatch(tx, log, req.runs, finishRuns, causedBy(env)),
  }));
  bus.serve(inventoryAnnealRpcs.status, () => tx((g) => annealStatus(g), {}, true));
}
