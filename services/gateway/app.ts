import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import { CrowbarError, httpStatus } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { operatorAuth } from './auth.js';
import { alivenessRoutes } from './routes/aliveness.js';
import { dhcpRoutes } from './routes/dhcp.js';
import { dnsRoutes } from './routes/dns.js';
import { EventStreams, eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { inventoryRoutes } from './routes/inventory.js';
import { ipamRoutes } from './routes/ipam.js';
import { provisionerRoutes } from './routes/provisioner.js';
import { registerRoutes } from './routes/register.js';
import { uiRoutes, whoamiRoutes } from './routes/ui.js';

export interface GatewayDeps {
  bus: Bus;
  log: Logger;
  clock: Clock;
  /** The gateway's own health report, answered without a round trip. */
  self: () => Promise<import('../../shared/catalogue/index.js').HealthReport>;
  adminToken: string;
  readOnlyToken: string | undefined;
  /** Checks discovery tokens (registration); unset: registration is refused. */
  discoverySecret?: string | undefined;
  /** The cluster domain new machines are named in (`d<mac>.<domain>`). */
  domain?: string;
  /** The event stream's open responses (ended when the gateway stops) and its knobs. */
  events?: { streams: EventStreams; heartbeatMs?: number; maxBufferBytes?: number; dropGraceMs?: number };
  /** The web UI's build (infra/ui-build.mjs); unset, `/` says how to build it. */
  uiDir?: string | undefined;
}

/** Paths that need no operator token: health, and node-facing endpoints that check a node credential. */
export const publicPaths = [/^\/api\/v2\/health$/, /^\/api\/v2\/node-api\//];

/** The HTTP API: sub-apps joined under /api/v2, one error mapping for all of them. */
export function createApp(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.use(
    '/api/*',
    operatorAuth({
      adminToken: deps.adminToken,
      readOnlyToken: deps.readOnlyToken,
      publicPaths,
      queryTokenPaths: [/^\/api\/v2\/events$/],
    }),
  );
  app.route(
    '/api/v2',
    eventRoutes({ bus: deps.bus, log: deps.log, streams: new EventStreams(), ...deps.events }),
  );
  app.route('/api/v2', whoamiRoutes());
  app.route('/api/v2', healthRoutes(deps));
  app.route('/api/v2', inventoryRoutes(deps));
  app.route('/api/v2', ipamRoutes(deps));
  app.route('/api/v2', dnsRoutes(deps));
  app.route('/api/v2', dhcpRoutes(deps));
  app.route('/api/v2', alivenessRoutes(deps));
  app.route('/api/v2', provisionerRoutes(deps));
  app.route(
    '/api/v2',
    registerRoutes({
      ...deps,
      discoverySecret: deps.discoverySecret,
      domain: deps.domain ?? 'crowbar.internal',
    }),
  );
  app.route('/', uiRoutes({ dir: deps.uiDir }));
  app.notFound((c) => c.json({ code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof CrowbarError) return c.json(err.toBody(), httpStatus[err.code]);
    if (err instanceof HTTPException) return err.getResponse();
    deps.log.error({ err, path: c.req.path }, 'request failed');
    return c.json({ code: 'internal', message: 'internal error' }, 500);
  });
  return app;
}
