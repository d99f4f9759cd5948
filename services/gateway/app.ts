import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import { CrowbarError, httpStatus } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { healthRoutes } from './routes/health.js';

export interface GatewayDeps {
  bus: Bus;
  log: Logger;
  clock: Clock;
  /** The gateway's own health report, answered without a round trip. */
  self: () => Promise<import('../../shared/catalogue/index.js').HealthReport>;
}

/** The HTTP API: sub-apps joined under /api/v2, one error mapping for all of them. */
export function createApp(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.route('/api/v2', healthRoutes(deps));
  app.notFound((c) => c.json({ code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof CrowbarError) return c.json(err.toBody(), httpStatus[err.code]);
    if (err instanceof HTTPException) return err.getResponse();
    deps.log.error({ err, path: c.req.path }, 'request failed');
    return c.json({ code: 'internal', message: 'internal error' }, 500);
  });
  return app;
}
