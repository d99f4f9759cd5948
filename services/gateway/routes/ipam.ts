import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { parsePayload } from '../../../shared/bus/bus.js';
import {
  ipamRpcs,
  networkCategory,
  networkChanges,
  networkInput,
  rangeChanges,
  rangeInput,
  routerInput,
} from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import type { GatewayDeps } from '../app.js';
import { jsonObject as body } from '../body.js';

/**
 * REST resources of the network barclamp (reference §5, §9), mounted under /api/v2. Each handler checks
 * the body against the catalogue schema (so a 422 names the field as the caller wrote it) and asks
 * network-ipam; ids or names are accepted wherever the original accepted either.
 */
export function ipamRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const ask = deps.bus.request.bind(deps.bus);
  networkRoutes(app, ask);
  rangeRoutes(app, ask);
  routerRoutes(app, ask);
  allocationRoutes(app, ask);
  return app;
}

type Ask = GatewayDeps['bus']['request'];

function networkRoutes(app: Hono, ask: Ask) {
  app.get('/networks', async (c) => {
    const dep = c.req.query('deployment');
    return c.json(
      await ask(ipamRpcs.networkList, {
        category: category(c),
        ...(dep ? { deploymentId: num(dep, 'deployment') } : {}),
      }),
    );
  });
  app.post('/networks', async (c) =>
    c.json(await ask(ipamRpcs.networkCreate, parsePayload(networkInput, await body(c), 'network')), 201),
  );
  app.get('/networks/:id', async (c) =>
    c.json(await ask(ipamRpcs.networkGet, { network: ref(c.req.param('id')) })),
  );
  const update = async (c: Context) =>
    c.json(
      await ask(ipamRpcs.networkUpdate, {
        network: ref(c.req.param('id')!),
        changes: parsePayload(networkChanges, await body(c), 'network changes'),
      }),
    );
  app.put('/networks/:id', update);
  app.patch('/networks/:id', update);
  app.delete('/networks/:id', async (c) =>
    c.json(await ask(ipamRpcs.networkDelete, { network: ref(c.req.param('id')) })),
  );
  app.get('/networks/:id/allocations', async (c) => {
    const node = c.req.query('node');
    return c.json(
      await ask(ipamRpcs.allocationFind, {
        network: ref(c.req.param('id')),
        ...(node ? { node: ref(node) } : {}),
      }),
    );
  });
  app.post('/networks/:id/allocate_ip', async (c) => {
    const b = parsePayload(allocateBody.omit({ network: true }), await body(c), 'allocation');
    return c.json(await ask(ipamRpcs.allocate, { ...b, network: ref(c.req.param('id')) }), 201);
  });
  app.get('/network_lookup', async (c) =>
    c.json(
      await ask(ipamRpcs.networkLookup, { ip: c.req.query('ip') ?? '', category: category(c) ?? 'admin' }),
    ),
  );
  app.get('/network_ula', async (c) => c.json(await ask(ipamRpcs.ulaPrefix, {})));
}

/** network_ranges, by id or by name with ?network=. */
function rangeRoutes(app: Hono, ask: Ask) {
  app.get('/network_ranges', async (c) => {
    const net = c.req.query('network');
    return c.json(await ask(ipamRpcs.rangeList, net ? { network: ref(net) } : {}));
  });
  app.post('/network_ranges', async (c) => {
    const { network, rest } = split(await body(c));
    return c.json(
      await ask(ipamRpcs.rangeCreate, { network, range: parsePayload(rangeInput, rest, 'range') }),
      201,
    );
  });
  app.get('/network_ranges/:id', async (c) => c.json(await ask(ipamRpcs.rangeGet, rangeRef(c))));
  const updateRange = async (c: Context) => {
    const { network: _ignored, name: _name, ...rest } = await body(c);
    return c.json(
      await ask(ipamRpcs.rangeUpdate, {
        ...rangeRef(c),
        changes: parsePayload(rangeChanges.strict(), rest, 'range'),
      }),
    );
  };
  app.put('/network_ranges/:id', updateRange);
  app.patch('/network_ranges/:id', updateRange);
  app.delete('/network_ranges/:id', async (c) => c.json(await ask(ipamRpcs.rangeDelete, rangeRef(c))));
}

function routerRoutes(app: Hono, ask: Ask) {
  app.get('/network_routers', async (c) => {
    const net = c.req.query('network');
    return c.json(await ask(ipamRpcs.routerList, net ? { network: ref(net) } : {}));
  });
  app.post('/network_routers', async (c) => {
    const { network, rest } = split(await body(c));
    return c.json(
      await ask(ipamRpcs.routerCreate, { network, router: parsePayload(routerInput, rest, 'router') }),
      201,
    );
  });
  app.get('/network_routers/:id', async (c) =>
    c.json(await ask(ipamRpcs.routerGet, { router: num(c.req.param('id'), 'id') })),
  );
  const updateRouter = async (c: Context) => {
    const { network: _ignored, ...rest } = await body(c);
    const changes = parsePayload(routerInput.omit({ family: true }).partial().strict(), rest, 'router');
    return c.json(await ask(ipamRpcs.routerUpdate, { router: num(c.req.param('id')!, 'id'), changes }));
  };
  app.put('/network_routers/:id', updateRouter);
  app.patch('/network_routers/:id', updateRouter);
  app.delete('/network_routers/:id', async (c) =>
    c.json(await ask(ipamRpcs.routerDelete, { router: num(c.req.param('id'), 'id') })),
  );
}

/** network_allocations, and a node's addresses. */
function allocationRoutes(app: Hono, ask: Ask) {
  app.get('/network_allocations', async (c) => {
    const node = c.req.query('node');
    const net = c.req.query('network');
    return c.json(
      await ask(ipamRpcs.allocationFind, {
        ...(node ? { node: ref(node) } : {}),
        ...(net ? { network: ref(net) } : {}),
        category: category(c),
      }),
    );
  });
  app.post('/network_allocations', async (c) =>
    c.json(await ask(ipamRpcs.allocate, parsePayload(allocateBody, await body(c), 'allocation')), 201),
  );
  app.get('/network_allocations/:id', async (c) =>
    c.json(await ask(ipamRpcs.allocationGet, { id: num(c.req.param('id'), 'id') })),
  );
  app.delete('/network_allocations/:id', async (c) =>
    c.json(await ask(ipamRpcs.allocationRelease, { id: num(c.req.param('id'), 'id') })),
  );

  app.get('/nodes/:id/addresses', async (c) => {
    const net = c.req.query('network');
    return c.json(
      await ask(ipamRpcs.allocationFind, {
        node: ref(c.req.param('id')),
        ...(net ? { network: ref(net) } : {}),
        category: category(c),
      }),
    );
  });
}

const ref = (v: string) => (/^\d+$/.test(v) ? Number(v) : v);

function num(v: string, field: string) {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1)
    throw new ValidationError(`${field} must be a positive id`, { field });
  return Number(v);
}

function category(c: Context) {
  const v = c.req.query('category');
  return v === undefined ? undefined : parsePayload(networkCategory, v, 'category query');
}

/** Takes `network` out of a body, so the rest can be checked against the resource schema. */
function split(b: Record<string, unknown>) {
  const { network, ...rest } = b;
  if (typeof network !== 'string' && typeof network !== 'number')
    throw new ValidationError('network (id or name) is required', { field: 'network' });
  return { network: typeof network === 'string' ? ref(network) : network, rest };
}

function rangeRef(c: Context) {
  const net = c.req.query('network');
  return { range: ref(c.req.param('id')!), ...(net ? { network: ref(net) } : {}) };
}

const idOrName = z.union([z.number().int().positive(), z.string().min(1).max(255)]);
const allocateBody = z
  .object({
    node: idOrName,
    network: idOrName,
    range: z.string().min(1).max(64).optional(),
    suggestion: z.string().min(1).max(64).optional(),
  })
  .strict();
