import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { alivenessMessages, inventoryOpRpcs, inventoryRpcs } from '../../../shared/catalogue/index.js';
import { ConflictError, NotFoundError, UnauthorizedError, ValidationError } from '../../../shared/errors.js';
import type { GatewayDeps } from '../app.js';
import { parseBody } from '../body.js';

const nodeIdParam = z.coerce.number().int().positive();
export const selfReport = z.object({ alive: z.boolean() }).strict();
export const bootenvReport = z.object({ bootenv: z.literal('local') }).strict();

/**
 * Aliveness resources, mounted under /api/v2:
 * - `PUT node-api/nodes/:id/alive`: a node's self-report at startup/shutdown, authenticated by the node's
 *   own credential (issued at registration), never by an operator token;
 * - `PUT node-api/nodes/:id/bootenv`: an installer's `{"bootenv":"local"}` when it is done;
 * - `GET nodes/:id/health`: the probe's view of a node (verdict, reason, last probes).
 */
export function alivenessRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();

  /** The node a node-API call is for, once its own credential (Authorization: Bearer) checks out. */
  const authenticatedNode = async (c: Context, what: string): Promise<number> => {
    const header = c.req.header('authorization') ?? '';
    const secret = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!secret) throw new UnauthorizedError('missing node credential (Authorization: Bearer <node secret>)');
    const idParse = nodeIdParam.safeParse(c.req.param('id'));
    if (!idParse.success) throw new ValidationError('node id must be a positive integer', { field: 'id' });
    const nodeId = idParse.data;
    if (secret.length > 200) throw new UnauthorizedError('invalid node credential');
    // An unknown node answers like a wrong credential, so the endpoint does not reveal which ids exist.
    const check = await deps.bus
      .request(inventoryRpcs.verifyNodeCredential, { node: nodeId, secret })
      .catch((err: unknown) => {
        if (err instanceof NotFoundError) return { valid: false, nodeId: null };
        throw err;
      });
    if (!check.valid || check.nodeId !== nodeId) {
      deps.log.warn({ node: nodeId }, `${what} refused: wrong node credential`);
      throw new UnauthorizedError('invalid node credential');
    }
    return nodeId;
  };

  app.put('/node-api/nodes/:id/alive', async (c) => {
    const { alive } = await parseBody(c, selfReport, 'self-report');
    const nodeId = await authenticatedNode(c, 'self-report');
    const node = await deps.bus.request(inventoryRpcs.getNode, { node: nodeId });
    // Reference §4.3: a parked (unavailable) node's reboots must not churn its noderoles, so its
    // shutdown report is acknowledged but not applied. Coming up (alive) is always accepted.
    if (!node.available && !alive) {
      deps.log.info({ node: nodeId, alive }, 'self-report ignored: node is unavailable');
      return c.json(
        { node: nodeId, alive: node.alive, changed: false, applied: false, reason: 'node is unavailable' },
        202,
      );
    }
    const r = await deps.bus.request(inventoryRpcs.setAlive, { node: nodeId, alive, reason: 'self-report' });
    deps.log.info({ node: nodeId, alive, changed: r.changed }, 'self-report applied');
    return c.json({ node: nodeId, alive: r.node.alive, changed: r.changed, applied: true });
  });

  /**
   * The installer's last word (reference §6.5 step 5): a node finishing an install sets its own bootenv
   * to `local`. That is all a node may do to its bootenv: any other value, or `local` from a bootenv that
   * is not an install, is refused, so a node cannot send itself back into an installer or discovery.
   */
  app.put('/node-api/nodes/:id/bootenv', async (c) => {
    const { bootenv } = await parseBody(c, bootenvReport, 'bootenv report');
    const nodeId = await authenticatedNode(c, 'bootenv report');
    const node = await deps.bus.request(inventoryRpcs.getNode, { node: nodeId });
    if (node.bootenv === bootenv) return c.json({ node: nodeId, bootenv, changed: false });
    if (!node.bootenv.endsWith('-install'))
      throw new ConflictError(
        `node ${node.name} is in bootenv ${node.bootenv}, not an install: only an installer may set bootenv local`,
        { field: 'bootenv', rule: 'a node sets bootenv local only at the end of an install' },
      );
    await deps.bus.request(
      inventoryOpRpcs['node.update'],
      { node: nodeId, bootenv },
      { correlationId: c.req.header('x-correlation-id') ?? crypto.randomUUID() },
    );
    deps.log.info({ node: nodeId, from: node.bootenv, bootenv }, 'install finished: node set bootenv local');
    return c.json({ node: nodeId, bootenv, changed: true });
  });

  app.get('/nodes/:id/health', async (c) => {
    const ref = c.req.param('id');
    const limitRaw = c.req.query('limit');
    const limit = limitRaw === undefined ? 50 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new ValidationError('limit must be an integer from 1 to 500', { field: 'limit' });
    const asId = nodeIdParam.safeParse(ref);
    const nodeId = asId.success
      ? asId.data
      : (await deps.bus.request(inventoryRpcs.getNode, { node: ref })).id;
    return c.json(await deps.bus.request(alivenessMessages.nodeHealth, { nodeId, limit }));
  });

  return app;
}
