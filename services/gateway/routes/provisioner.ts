import { Hono } from 'hono';
import { inventoryRpcs, provisionerMessages } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import type { GatewayDeps } from '../app.js';

const positiveInt = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1)
    throw new ValidationError(`${name} must be a positive integer`, { field: name });
  return Number(v);
};

/** REST resources of the provisioner, mounted under /api/v2: bootenvs and what machines fetched. */
export function provisionerRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const ask = deps.bus.request.bind(deps.bus);
  app.get('/bootenvs', async (c) => c.json((await ask(provisionerMessages.bootenvList, {})).bootenvs));
  const events = async (q: {
    nodeId?: number | undefined;
    mac?: string | undefined;
    before?: string;
    limit?: string;
  }) =>
    (
      await ask(provisionerMessages.bootEventList, {
        ...(q.nodeId !== undefined ? { nodeId: q.nodeId } : {}),
        ...(q.mac ? { mac: q.mac } : {}),
        ...(q.before ? { before: positiveInt('before', q.before)! } : {}),
        ...(q.limit ? { limit: positiveInt('limit', q.limit)! } : {}),
      })
    ).events;
  app.get('/boot_events', async (c) => {
    const q = c.req.query();
    return c.json(
      await events({
        nodeId: positiveInt('node', q.node),
        mac: q.mac,
        ...(q.before ? { before: q.before } : {}),
        ...(q.limit ? { limit: q.limit } : {}),
      }),
    );
  });
  app.get('/nodes/:id/boot_events', async (c) => {
    const ref = c.req.param('id');
    const nodeId = /^\d+$/.test(ref) ? Number(ref) : (await ask(inventoryRpcs.getNode, { node: ref })).id;
    const q = c.req.query();
    return c.json(
      await events({
        nodeId,
        ...(q.before ? { before: q.before } : {}),
        ...(q.limit ? { limit: q.limit } : {}),
      }),
    );
  });
  return app;
}
