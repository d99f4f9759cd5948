import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { consume } from '../../shared/bus/consume.js';
import { fqdn, inventoryAnnealRpcs, inventoryRpcs, ipamMessages } from '../../shared/catalogue/index.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { ConflictError, NotFoundError } from '../../shared/errors.js';
import { createFaults } from '../../shared/fault.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { adminNodeReconciler, hintAdminAddresses, oncePerNetwork, seedAdminNode } from './admin-node.js';
import { serveOperations } from './api.js';
import { outbox } from './db/schema.js';
import { readBarclamps } from './domain/barclamp.js';
import { bind } from './engine/binding.js';
import { defineRole, importBarclamps } from './engine/catalogue.js';
import { createNode, deploymentId, nodeId, updateNode, verifyCredential } from './engine/nodes.js';
import { annealStatus, candidates, finishRuns, startRuns } from './engine/runs.js';
import { type EnvelopeMaker, type GraphTx, inGraphTx } from './engine/tx.js';

const inventoryConfig = z.object({
  /** The admin node created at first start (skipped with `false`, e.g. by `npm start -- --wizard`). */
  CROWBAR_ADMIN_NODE: z
    .string()
    .transform((v) => v.toLowerCase())
    .pipe(z.union([z.literal('false'), fqdn]))
    .default('admin.crowbar.internal'),
  /**
   * Whether script roles bound to the admin node (crowbar-access: root's authorized_keys; dns-client:
   * /etc/resolv.conf) run on this machine. Off: they go ACTIVE with the runlog "skipped: host changes
   * not enabled", and `npm start` leaves the host as it was.
   */
  CROWBAR_ADMIN_HOST_CHANGES: z.enum(['true', 'false']).default('false'),
  /** Directories of barclamp YAML files (and their scripts/) imported at start, separated by commas. */
  CROWBAR_BARCLAMPS: z
    .string()
    .min(1)
    .default(fileURLToPath(new URL('./barclamps', import.meta.url)))
    .transform((v) =>
      v
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean),
    ),
});

/** The core barclamps, and the test barclamp for tests and the lab (`CROWBAR_BARCLAMPS=<core>,<test>`). */
export const coreBarclampDir = fileURLToPath(new URL('./barclamps', import.meta.url));
export const testBarclampDir = fileURLToPath(new URL('./barclamps-test', import.meta.url));

/** Seeds what every installation has: the committed `system` deployment and its phantom node. */
async function seed(run: <T>(fn: Parameters<typeof inGraphTx<T>>[3]) => Promise<T>) {
  await run(async (g) => {
    await g.rows(sql`insert into inventory.deployments (name, state, system, description)
                     values ('system', 'committed', true, 'The system deployment: the admin node and cluster-wide services')
                     on conflict (name) do nothing`);
    if (!(await g.one(sql`select 1 from inventory.nodes where system`))) {
      await createNode(g, {
        name: 'system-phantom.internal.local',
        system: true,
        alive: true,
        available: true,
        bootenv: 'local',
        deployment: 'system',
      });
    }
  });
}

export const inventoryService: ServiceDef<typeof inventoryConfig> = {
  name: 'inventory',
  config: inventoryConfig,
  schema: { name: 'inventory', migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)) },
  async start({ database, bus, log, config }) {
    const db = database!.db;
    const envelope: EnvelopeMaker = (type, data, lineage) => bus.envelope(type, data, lineage);
    const deps = { envelope, log };
    const relay = startOutboxRelay({
      database: database!,
      table: outbox,
      channel: 'inventory_outbox',
      bus,
      log,
      faults: createFaults(config, log),
    });
    const tx = <T>(fn: Parameters<typeof inGraphTx<T>>[3], lineage = {}, readOnly = false) =>
      inGraphTx(db, deps, lineage, fn, { readOnly }).finally(() => void relay.flush());

    const specs = config.CROWBAR_BARCLAMPS.flatMap((dir) => readBarclamps(dir));
    await tx((g) => importBarclamps(g, specs));
    await seed((fn) => tx(fn));
    let adminTimer: NodeJS.Timeout | null = null;
    const noInterface = oncePerNetwork(log);
    // Every network (the wizard's, the operator's): the admin node's address there is this machine's.
    const networks = await consume(bus, {
      decl: { stream: 'EVENTS', durable: 'inventory-networks', ackWaitMs: 30_000, maxDeliver: 5 },
      log,
      handlers: [
        [
          ipamMessages.networkCreated,
          async (d) => void (await tx((g) => hintAdminAddresses(g, d.network, noInterface))),
        ],
        [
          ipamMessages.networkChanged,
          async (d) => void (await tx((g) => hintAdminAddresses(g, d.network, noInterface))),
        ],
      ],
    });
    if (config.CROWBAR_ADMIN_NODE !== 'false') {
      await seedAdminNode((fn) => tx(fn), config.CROWBAR_ADMIN_NODE, log, {
        hostChanges: config.CROWBAR_ADMIN_HOST_CHANGES === 'true',
      });
      // Bounded: gives up after 10 minutes (the operator can still commit and join it through the API).
      const until = Date.now() + 600_000;
      const reconcile = adminNodeReconciler({ tx: (fn) => tx(fn), bus, log, noInterface });
      let busy = false;
      adminTimer = setInterval(() => {
        if (busy) return;
        busy = true;
        reconcile()
          .then((done) => {
            if ((done || Date.now() > until) && adminTimer) clearInterval(adminTimer);
          })
          .catch((err: unknown) => log.warn({ err }, 'admin node not reconciled yet; will retry'))
          .finally(() => {
            busy = false;
          });
      }, 1000);
    }
    log.info(
      { barclamps: specs.map((b) => b.name), roles: specs.reduce((n, b) => n + b.roles.length, 0) },
      'barclamps imported',
    );

    const lineageOf = (env: { correlationId: string; id: string }) => ({
      correlationId: env.correlationId,
      causationId: env.id,
    });
    serveOperations(bus, tx);
    bus.serve(inventoryRpcs.getNode, async (req) =>
      tx(
        async (g) => {
          const n = await g.nodeSummary(await nodeId(g, req.node));
          if (!n) throw new NotFoundError(`no node ${req.node}`, { field: 'node' });
          return n;
        },
        {},
        true,
      ),
    );
    bus.serve(inventoryRpcs.listNodes, async () =>
      tx(
        async (g) => {
          const ids = await g.rows<{ id: number }>(sql`select id from inventory.nodes order by id`);
          const nodes = [];
          for (const { id } of ids) nodes.push((await g.nodeSummary(id))!);
          return { nodes };
        },
        {},
        true,
      ),
    );
    bus.serve(inventoryRpcs.defineRole, async (req, env) =>
      tx(async (g) => ({ id: await defineRole(g, req), name: req.name }), lineageOf(env)),
    );
    bus.serve(inventoryRpcs.deleteRole, async (req, env) =>
      tx(async (g) => {
        const r = await g.one<{ id: number }>(sql`select id from inventory.roles where name = ${req.name}`);
        if (!r) return { deleted: false };
        const used = await g.one<{ n: number }>(
          sql`select count(*)::int as n from inventory.noderoles where role_id = ${r.id}`,
        );
        if (used?.n)
          throw new ConflictError(`role ${req.name} is still bound to ${used.n} nodes`, {
            rule: 'bound roles cannot be deleted',
          });
        await g.rows(sql`delete from inventory.attribs where role_id = ${r.id}`);
        await g.rows(sql`delete from inventory.deployment_roles where role_id = ${r.id}`);
        await g.rows(sql`delete from inventory.roles where id = ${r.id}`);
        return { deleted: true };
      }, lineageOf(env)),
    );
    bus.serve(inventoryRpcs.bindRole, async (req, env) =>
      tx(async (g) => {
        const node = await nodeId(g, req.node);
        const dep =
          req.deployment !== undefined
            ? await deploymentId(g, req.deployment)
            : (await g.nodeSummary(node))!.deploymentId;
        return g.noderoleSummary(await bind(g, req.role, node, dep));
      }, lineageOf(env)),
    );
    bus.serve(inventoryRpcs.setAlive, async (req, env) =>
      tx(async (g) => {
        const id = await nodeId(g, req.node);
        const changed = await updateNode(g, id, { alive: req.alive }, req.reason);
        return { node: (await g.nodeSummary(id))!, changed: changed.length > 0 };
      }, lineageOf(env)),
    );
    bus.serve(inventoryRpcs.verifyNodeCredential, async (req) =>
      tx(
        async (g) => {
          const id = await verifyCredential(g, req.node, req.secret);
          return { valid: id !== null, nodeId: id };
        },
        {},
        true,
      ),
    );
    bus.serve(inventoryAnnealRpcs.runnable, async (req) =>
      tx(async (g) => ({ candidates: await candidates(g, req.limit, req.excludeNodeIds) }), {}, true),
    );
    /**
     * A batch runs in one transaction and a few statements (rows locked in noderole order, a stable lock
     * order between batches). If the transaction fails as a whole, each item is tried on its own, so one
     * bad item fails alone.
     */
    const batch = async <Q extends { noderoleId: number }, R>(
      items: Q[],
      many: (g: GraphTx, items: Q[]) => Promise<R[]>,
      lineage: { correlationId: string; causationId: string },
    ): Promise<({ result: R } | { error: string })[]> => {
      try {
        return (await tx((g) => many(g, items), lineage)).map((result) => ({ result }));
      } catch (err) {
        log.warn({ err, items: items.length }, 'batch transaction failed; trying its items one by one');
        return Promise.all(
          items.map((item) =>
            tx(async (g) => (await many(g, [item]))[0] as R, lineage).then(
              (result) => ({ result }),
              (e: unknown) => ({
                error: `noderole ${item.noderoleId}: ${e instanceof Error ? e.message : String(e)}`,
              }),
            ),
          ),
        );
      }
    };
    bus.serve(inventoryAnnealRpcs.startRuns, async (req, env) => ({
      results: await batch(
        req.runs,
        (g, runs) => startRuns(g, runs, { adminHostChanges: config.CROWBAR_ADMIN_HOST_CHANGES === 'true' }),
        lineageOf(env),
      ),
    }));
    bus.serve(inventoryAnnealRpcs.finishRuns, async (req, env) => ({
      results: await batch(req.runs, finishRuns, lineageOf(env)),
    }));
    bus.serve(inventoryAnnealRpcs.status, async () => tx((g) => annealStatus(g), {}, true));
    log.debug('inventory serving');

    return {
      stop: async () => {
        if (adminTimer) clearInterval(adminTimer);
        await networks.stop();
        await relay.stop();
      },
    };
  },
};
