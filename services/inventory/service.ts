import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { consume } from '../../shared/bus/consume.js';
import { fqdn, ipamMessages } from '../../shared/catalogue/index.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { createFaults } from '../../shared/fault.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { hintAdminAddresses, oncePerNetwork, reconcileAdminNode, seedAdminNode } from './admin-node.js';
import { serveOperations } from './api.js';
import { outbox } from './db/schema.js';
import { readBarclamps } from './domain/barclamp.js';
import { importBarclamps } from './engine/catalogue.js';
import { createNode } from './engine/nodes.js';
import { type EnvelopeMaker, inGraphTx } from './engine/tx.js';
import { serveAnnealRpcs, serveNodeRpcs } from './rpcs.js';
import { seedSystemDeployment } from './store/deployments.js';
import { anySystemNodeExists } from './store/nodes.js';

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
    await seedSystemDeployment(g);
    if (!(await anySystemNodeExists(g))) {
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
      // A read-only transaction cannot have added to the outbox: no relay pass (a transaction of its own).
      inGraphTx(db, deps, lineage, fn, { readOnly }).finally(() => readOnly || void relay.flush());

    const specs = config.CROWBAR_BARCLAMPS.flatMap((dir) => readBarclamps(dir));
    await tx((g) => importBarclamps(g, specs));
    await seed((fn) => tx(fn));
    let stopAdminNode: () => void = () => undefined;
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
      stopAdminNode = reconcileAdminNode({ tx: (fn) => tx(fn), bus, log, noInterface });
    }
    log.info(
      { barclamps: specs.map((b) => b.name), roles: specs.reduce((n, b) => n + b.roles.length, 0) },
      'barclamps imported',
    );

    serveOperations(bus, tx);
    serveNodeRpcs(bus, tx);
    serveAnnealRpcs(bus, tx, log, { adminHostChanges: config.CROWBAR_ADMIN_HOST_CHANGES === 'true' });
    log.debug('inventory serving');

    return {
      stop: async () => {
        stopAdminNode();
        await networks.stop();
        await relay.stop();
      },
    };
  },
};
