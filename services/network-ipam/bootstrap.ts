import { sql } from 'drizzle-orm';
import { type NetworkInput, networkInput } from '../../shared/catalogue/index.js';
import { type Ctx, globalId, inTx } from './context.js';
import { listNetworks } from './db/network-store.js';
import { broadcastOf, type Cidr, formatIp, networkOf, parseCidr } from './domain/address.js';
import { createIn } from './networks.js';

/**
 * At start: make sure the installation's ULA global ID exists, and (unless switched off) create the
 * admin network and the `unmanaged` catch-all when none exist. Many instances may start together; an
 * advisory lock makes the check-and-create happen once.
 */
export async function bootstrap(
  ctx: Ctx,
  opts: { adminNetwork: boolean; adminCidr: string; v6prefix: string | null },
) {
  const id = await globalId(ctx.database.db);
  if (!opts.adminNetwork) return { globalId: id, created: [] as string[] };
  const created = await inTx(ctx, async (tx, events) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('network_ipam:bootstrap'))`);
    const made: string[] = [];
    if ((await listNetworks(tx, { category: 'admin' })).length === 0) {
      await createIn(tx, adminNetworkInput(opts.adminCidr, opts.v6prefix), events);
      made.push('admin');
    }
    if ((await listNetworks(tx, { category: 'unmanaged' })).length === 0) {
      await createIn(tx, unmanagedInput, events);
      made.push('unmanaged');
    }
    return made;
  });
  for (const name of created) ctx.log.info({ network: name }, 'bootstrap network created');
  if (created.length) ctx.kickRoleTasks();
  return { globalId: id, created };
}

/** Checks CROWBAR_ADMIN_CIDR: an IPv4 subnet of /8../24 so the conventional offsets fit. */
export function adminCidrProblem(v: string): string | null {
  const c = parseCidr(v);
  if (c?.family !== 'ipv4') return 'must be an IPv4 subnet such as 198.18.0.0/24';
  if (c.prefix < 8 || c.prefix > 24) return 'must have a prefix length from /8 to /24';
  return null;
}

/** The shipped admin network (reference §5.3 `the_admin`), laid over the configured subnet. */
export function adminNetworkInput(cidr: string, v6prefix: string | null): NetworkInput {
  const c = parseCidr(cidr)!;
  const base = networkOf(c);
  const at = (offset: bigint) => `${formatIp({ family: 'ipv4', value: base + offset })}/${c.prefix}`;
  const top = `${formatIp({ family: 'ipv4', value: broadcastOf(c as Cidr) - 1n })}/${c.prefix}`;
  return networkInput.parse({
    name: 'admin',
    description: 'Admin network (bootstrap)',
    category: 'admin',
    group: 'internal',
    conduit: '1g0',
    v6prefix,
    ranges: [
      { name: 'admin', first: at(10n), last: at(11n) },
      { name: 'dhcp', first: at(21n), last: at(80n) },
      { name: 'host', first: at(81n), last: top },
    ],
    router: { address: at(1n), pref: 10 },
  });
}

/** Catch-all for hinted addresses on no managed network (reference §5.3 `unmanaged`). */
const unmanagedInput: NetworkInput = networkInput.parse({
  name: 'unmanaged',
  description: 'Addresses outside every managed network',
  category: 'unmanaged',
  conduit: '?1g0',
  configure: false,
  order: 100_000,
  ranges: [
    { name: 'host', first: '0.0.0.1/0', last: '223.255.255.254/0', overlap: true },
    {
      name: 'host-v6',
      first: '::1/0',
      last: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/0',
      overlap: true,
    },
  ],
});
