import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { z } from 'zod';
import { intFromEnv } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { adminCidrProblem, bootstrap } from './bootstrap.js';
import type { Ctx } from './context.js';
import { outbox } from './db/schema.js';
import { outboxChannel } from './events.js';
import { startConsumers } from './handlers.js';
import { startRoleSync } from './role-sync.js';
import { serveRpcs } from './rpc.js';

const ipamConfig = z.object({
  /** `false` leaves the admin network to the operator (wizard). */
  CROWBAR_BOOTSTRAP_ADMIN_NETWORK: z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .default('true'),
  CROWBAR_ADMIN_CIDR: z
    .string()
    .superRefine((v, c) => {
      const p = adminCidrProblem(v);
      if (p) c.addIssue({ code: 'custom', message: p });
    })
    .default('198.18.0.0/24'),
  /** IPv6 of the bootstrap admin network: `auto` (ULA), four hextets, or `none`. */
  CROWBAR_ADMIN_V6PREFIX: z
    .string()
    .regex(/^(auto|none|[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){3})$/, 'must be auto, none or four hextets')
    .default('auto'),
  /** Connections of the allocation pool (on top of the service's own pool); opened on demand. */
  CROWBAR_IPAM_DB_CONNECTIONS: intFromEnv(2, 200).default(20),
});

export const networkIpamService: ServiceDef<typeof ipamConfig> = {
  name: 'network-ipam',
  config: ipamConfig,
  schema: {
    name: 'network_ipam',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database, bus, log, clock, config, instance }) {
    const db = database!;
    const relay = startOutboxRelay({ database: db, table: outbox, channel: outboxChannel, bus, log });
    const roles = startRoleSync({ database: db, bus, log });
    // Idle claim connections go back quickly: the server's connection budget is shared.
    const claims = new pg.Pool({
      connectionString: config.DATABASE_URL,
      max: config.CROWBAR_IPAM_DB_CONNECTIONS,
      idleTimeoutMillis: 2000,
      connectionTimeoutMillis: 10_000,
      application_name: `${instance}-claims`,
    });
    claims.on('error', () => undefined);
    const kickOutbox = () => void relay.flush();
    const ctx: Ctx = {
      database: db,
      claims,
      bus,
      log,
      clock,
      kickRoleTasks: roles.kick,
      kickOutbox,
    };
    const stops: (() => Promise<void>)[] = [() => roles.stop(), () => relay.stop(), () => claims.end()];
    try {
      const boot = await bootstrap(ctx, {
        adminNetwork: config.CROWBAR_BOOTSTRAP_ADMIN_NETWORK === 'true',
        adminCidr: config.CROWBAR_ADMIN_CIDR,
        v6prefix: config.CROWBAR_ADMIN_V6PREFIX === 'none' ? null : config.CROWBAR_ADMIN_V6PREFIX,
      });
      const subs = serveRpcs(ctx);
      stops.unshift(async () => {
        for (const s of subs) s.unsubscribe();
      });
      const consumers = await startConsumers(ctx);
      stops.unshift(async () => {
        for (const c of consumers) await c.stop();
      });
      log.info({ ulaGlobalId: boot.globalId, bootstrapped: boot.created }, 'network-ipam ready');
    } catch (err) {
      for (const s of stops) await s();
      throw err;
    }
    return {
      detail: () => ({ roleTasks: roles.stats }),
      async stop() {
        for (const s of stops) await s();
      },
    };
  },
};
