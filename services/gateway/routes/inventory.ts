import { type Context, Hono } from 'hono';
import type { z } from 'zod';
import { parsePayload } from '../../../shared/bus/bus.js';
import {
  annealerMessages,
  type InventoryOp,
  inventoryAnnealRpcs,
  inventoryOpRpcs,
} from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import type { GatewayDeps } from '../app.js';
import { jsonObject as body } from '../body.js';

/** Checked here so bad input never leaves the gateway (a 422 naming the field); inventory checks again. */
function checkRequest<S extends z.ZodType>(schema: S, args: unknown): asserts args is z.input<S> {
  parsePayload(schema, args, 'request');
}

/**
 * A list's paging from the query: `limit` (a whole number; its range is the operation's to check) and
 * `cursor` (the `next` of the page before). Left out, the first page of the default size.
 */
export function pageQuery(c: Context): { limit?: number; cursor?: string } {
  const limit = c.req.query('limit');
  const cursor = c.req.query('cursor');
  if (limit !== undefined && !/^\d{1,9}$/.test(limit))
    throw new ValidationError(`limit must be a whole number, got "${limit.slice(0, 20)}"`, {
      field: 'limit',
    });
  return {
    ...(limit !== undefined ? { limit: Number(limit) } : {}),
    ...(cursor !== undefined ? { cursor } : {}),
  };
}

/** What `c.json` answers with. */
const jsonType = { 'Content-Type': 'application/json' };

/** Path ids may be numbers or names (reference §1.1). */
const ref = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);

/** Answers a request with inventory's answer to `op`, checked here first (a 422 before it leaves). */
function inventoryCaller(deps: GatewayDeps) {
  return async <K extends InventoryOp>(
    c: Context,
    op: K,
    args: Record<string, unknown>,
    status: 200 | 201 = 200,
  ) => {
    const def = inventoryOpRpcs[op];
    checkRequest(def.request, args);
    // Inventory's answer as it wrote it (checked against the op's response schema there): a list of
    // a thousand nodes is neither parsed nor checked nor written out again here.
    const json = await deps.bus.requestJson(def, args, {
      timeoutMs: 30_000,
      correlationId: c.req.header('x-correlation-id') ?? crypto.randomUUID(),
    });
    return c.body(json, status, jsonType);
  };
}
type Caller = ReturnType<typeof inventoryCaller>;

/** GET/PUT `<base>/:id/attribs/:attrib` (`{"value": …}`) for one kind of attrib holder. */
function attribRoutes(
  app: Hono,
  call: Caller,
  base: string,
  target: 'node' | 'noderole' | 'deployment_role',
  key: (c: Context) => number | string,
) {
  app.get(`${base}/:id/attribs/:attrib`, (c) =>
    call(c, 'attrib.get', { target, id: key(c), attrib: c.req.param('attrib') }),
  );
  app.put(`${base}/:id/attribs/:attrib`, async (c) =>
    call(c, 'attrib.set', {
      target,
      id: key(c),
      attrib: c.req.param('attrib'),
      value: (await body(c)).value,
    }),
  );
}

/** REST resources of inventory (nodes, roles, node_roles, deployments, deployment_roles, attribs, anneal). */
export function inventoryRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const call = inventoryCaller(deps);
  const id = (c: Context) => ref(c.req.param('id') ?? '');
  const num = (c: Context) => Number(c.req.param('id'));

  // nodes
  app.get('/nodes', (c) => call(c, 'node.list', pageQuery(c)));
  app.post('/nodes', async (c) => call(c, 'node.create', await body(c), 201));
  app.get('/nodes/:id', (c) => call(c, 'node.get', { node: id(c) }));
  app.put('/nodes/:id', async (c) => call(c, 'node.update', { ...(await body(c)), node: id(c) }));
  app.delete('/nodes/:id', (c) => call(c, 'node.delete', { node: id(c) }));
  app.put('/nodes/:id/propose', (c) => call(c, 'node.propose', { node: id(c) }));
  app.put('/nodes/:id/commit', (c) => call(c, 'node.commit', { node: id(c) }));
  app.get('/nodes/:id/node_roles', (c) => call(c, 'noderole.list', { node: id(c), ...pageQuery(c) }));
  app.get('/nodes/:id/node_roles/:role', (c) =>
    call(c, 'noderole.get', { node: id(c), role: c.req.param('role') }),
  );
  attribRoutes(app, call, '/nodes', 'node', id);

  // roles (read-only)
  app.get('/roles', (c) => call(c, 'role.list', {}));
  app.get('/roles/:id', (c) => call(c, 'role.get', { role: id(c) }));

  // node_roles
  app.get('/node_roles', (c) => {
    const q = c.req.query();
    return call(c, 'noderole.list', {
      ...(q.node ? { node: ref(q.node) } : {}),
      ...(q.deployment ? { deployment: ref(q.deployment) } : {}),
      ...(q.role ? { role: q.role } : {}),
      ...(q.state ? { state: q.state } : {}),
      ...pageQuery(c),
    });
  });
  app.post('/node_roles', async (c) => call(c, 'noderole.create', await body(c), 201));
  app.get('/node_roles/:id', (c) => call(c, 'noderole.get', { noderole: num(c) }));
  app.put('/node_roles/:id', async (c) =>
    call(c, 'noderole.update', { noderole: num(c), data: (await body(c)).data }),
  );
  app.delete('/node_roles/:id', (c) => call(c, 'noderole.delete', { noderole: num(c) }));
  for (const action of ['retry', 'propose', 'commit'] as const) {
    app.put(`/node_roles/:id/${action}`, (c) => call(c, `noderole.${action}`, { noderole: num(c) }));
  }
  attribRoutes(app, call, '/node_roles', 'noderole', num);

  // deployments
  app.get('/deployments', (c) => call(c, 'deployment.list', {}));
  app.post('/deployments', async (c) => call(c, 'deployment.create', await body(c), 201));
  app.get('/deployments/:id', (c) => call(c, 'deployment.get', { deployment: id(c) }));
  app.delete('/deployments/:id', (c) => call(c, 'deployment.delete', { deployment: id(c) }));
  app.put('/deployments/:id/propose', (c) => call(c, 'deployment.propose', { deployment: id(c) }));
  app.put('/deployments/:id/recall', (c) => call(c, 'deployment.propose', { deployment: id(c) }));
  app.put('/deployments/:id/commit', (c) => call(c, 'deployment.commit', { deployment: id(c) }));
  app.get('/deployments/:id/graph', (c) => call(c, 'deployment.graph', { deployment: id(c) }));
  app.get('/deployments/:id/preview', (c) => call(c, 'deployment.preview', { deployment: id(c) }));
  app.get('/deployments/:id/node_roles', (c) =>
    call(c, 'noderole.list', { deployment: id(c), ...pageQuery(c) }),
  );
  app.get('/deployments/:id/deployment_roles', (c) => call(c, 'deployment_role.list', { deployment: id(c) }));

  // deployment_roles
  app.get('/deployment_roles', (c) => call(c, 'deployment_role.list', {}));
  app.post('/deployment_roles', async (c) => call(c, 'deployment_role.create', await body(c), 201));
  app.get('/deployment_roles/:id', (c) => call(c, 'deployment_role.get', { id: num(c) }));
  app.put('/deployment_roles/:id', async (c) =>
    call(c, 'deployment_role.update', { id: num(c), data: (await body(c)).data }),
  );
  app.put('/deployment_roles/:id/commit', (c) => call(c, 'deployment_role.commit', { id: num(c) }));
  app.put('/deployment_roles/:id/propose', (c) => call(c, 'deployment_role.propose', { id: num(c) }));
  attribRoutes(app, call, '/deployment_roles', 'deployment_role', num);

  app.get('/attribs', (c) => call(c, 'attrib.list', {}));

  // anneal: 409 failed, 202 working/scheduled, 200 finished (reference §3.9)
  app.get('/anneal', async (c) => {
    const s = await deps.bus.request(inventoryAnnealRpcs.status, {});
    const status = s.status === 'failed' ? 409 : s.status === 'finished' ? 200 : 202;
    return c.json({ message: s.status, counts: s.counts }, status);
  });
  app.get('/runs', async (c) => {
    const args = { active: c.req.query('all') !== 'true', ...pageQuery(c) };
    checkRequest(annealerMessages.runs.request, args);
    return c.json(await deps.bus.request(annealerMessages.runs, args));
  });
  return app;
}
