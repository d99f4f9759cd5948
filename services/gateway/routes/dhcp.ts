import { Hono } from 'hono';
import { dhcpMessages, leaseState } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import { normaliseMac } from '../../../shared/mac.js';
import type { GatewayDeps } from '../app.js';

const positiveInt = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1)
    throw new ValidationError(`${name} must be a positive integer`, { field: name });
  return Number(v);
};

/** REST resources of the dhcp domain, mounted under /api/v2: leases, reservations, counters. */
export function dhcpRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const ask = deps.bus.request.bind(deps.bus);
  app.get('/dhcp/leases', async (c) => {
    const q = c.req.query();
    const state = q.state === undefined ? undefined : leaseState.safeParse(q.state);
    if (state && !state.success)
      throw new ValidationError(`state must be one of ${leaseState.options.join(', ')}`, { field: 'state' });
    const r = await ask(dhcpMessages.leaseList, {
      ...(state?.data ? { state: state.data } : {}),
      ...(q.mac ? { mac: normaliseMac(q.mac) ?? q.mac } : {}),
      ...(q.network ? { network: q.network } : {}),
      ...(q.node ? { nodeId: positiveInt('node', q.node)! } : {}),
      // `cursor` like every list; `after` (the last address of the page before) is its older name.
      ...((q.cursor ?? q.after) ? { after: (q.cursor ?? q.after)! } : {}),
      ...(q.limit ? { limit: positiveInt('limit', q.limit)! } : {}),
    });
    if (r.next) c.header('Link', `</api/v2/dhcp/leases?cursor=${encodeURIComponent(r.next)}>; rel="next"`);
    return c.json(r);
  });
  app.get('/dhcp/reservations', async (c) => {
    const node = c.req.query('node');
    const mac = c.req.query('mac');
    return c.json(
      (
        await ask(dhcpMessages.reservationList, {
          ...(node ? { nodeId: positiveInt('node', node)! } : {}),
          ...(mac ? { mac: normaliseMac(mac) ?? mac } : {}),
        })
      ).reservations,
    );
  });
  app.delete('/dhcp/leases/:address', async (c) =>
    c.json(await ask(dhcpMessages.leaseRelease, { address: c.req.param('address') })),
  );
  app.get('/dhcp/stats', async (c) => c.json(await ask(dhcpMessages.stats, {})));
  return app;
}
