import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Bus } from '../../shared/bus/bus.js';
import type { Clock } from '../../shared/clock.js';
import { CrowbarError, httpStatus, isDatabaseUnavailable } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { auditedMethods, auditLog, type TokenCache } from './accounts.js';
import { operatorAuth } from './auth.js';
import type { GatewayStore } from './db/store.js';
import { openApiRoutes } from './openapi.js';
import { type RateLimit, rateLimitBySource } from './rate-limit.js';
import { alivenessRoutes } from './routes/aliveness.js';
import { dhcpRoutes } from './routes/dhcp.js';
import { dnsRoutes } from './routes/dns.js';
import { EventStreams, eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { inventoryRoutes } from './routes/inventory.js';
import { ipamRoutes } from './routes/ipam.js';
import { provisionerRoutes } from './routes/provisioner.js';
import { registerRoutes } from './routes/register.js';
import { tokenRoutes } from './routes/tokens.js';
import { uiRoutes, whoamiRoutes } from './routes/ui.js';
import { type WebhookRouteDeps, webhookRoutes } from './routes/webhooks.js';

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
  /** Named tokens and the audit log (the gateway schema); unset, the two static tokens and no log. */
  accounts?: { store: GatewayStore; tokens: TokenCache };
  /** Node-facing routes, per source address; default 20/s with bursts of 100. */
  nodeApiRate?: RateLimit;
  /** Webhooks (the gateway schema and their JetStream consumers); unset, `/webhooks` answers 503. */
  webhooks?: WebhookRouteDeps;
}

/**
 * Paths that need no operator token: health, the API's description and its docs page, and node-facing
 * endpoints that check a node credential.
 */
export const publicPaths = [
  /^\/api\/v2\/health$/,
  /^\/api\/v2\/node-api\//,
  /^\/api\/v2\/openapi\.json$/,
  /^\/api\/docs(\/[^/]*)?$/,
];

/** The HTTP API: sub-apps joined under /api/v2, one error mapping for all of them. */
export function createApp(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.use(
    '/api/v2/node-api/*',
    rateLimitBySource(deps.nodeApiRate ?? { perSecond: 20, burst: 100 }, deps.clock, deps.log),
  );
  // Only calls that may change something are audited; reads never enter it.
  if (deps.accounts) app.on(auditedMethods, '/api/*', auditLog(deps.accounts.store, deps.log));
  app.use(
    '/api/*',
    operatorAuth({
      adminToken: deps.adminToken,
      readOnlyToken: deps.readOnlyToken,
      publicPaths,
      queryTokenPaths: [/^\/api\/v2\/events$/],
      ...(deps.accounts ? { lookup: deps.accounts.tokens.lookup } : {}),
    }),
  );
  app.route(
    '/api/v2',
    eventRoutes({ bus: deps.bus, log: deps.log, streams: new EventStreams(), ...deps.events }),
  );
  app.route('/api/v2', whoamiRoutes());
  app.route('/api/v2', tokenRoutes(deps.accounts));
  app.route('/api/v2', webhookRoutes(deps.webhooks));
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
  app.route(
    '/api',
    openApiRoutes({ routes: () => app.routes, version: async () => (await deps.self()).version }),
  );
  app.route('/', uiRoutes({ dir: deps.uiDir }));
  app.notFound((c) => c.json({ code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    // A fault's own words stay in the log: the client gets the code, and the correlation id to ask about.
    if (err instanceof CrowbarError && err.code === 'internal') {
      deps.log.error({ err, path: c.req.path }, 'request failed in a service');
      return c.json({ code: 'internal', message: 'internal error' }, 500);
    }
    if (err instanceof CrowbarError) return c.json(err.toBody(), httpStatus[err.code]);
    if (err instanceof HTTPException) return err.getResponse();
    if (isDatabaseUnavailable(err)) {
      deps.log.warn({ err, path: c.req.path }, 'gateway database unavailable');
      return c.json(
        { code: 'unavailable', message: 'the gateway cannot reach its database; try again' },
        503,
      );
    }
    deps.log.error({ err, path: c.req.path }, 'request failed');
    return c.json({ code: 'internal', message: 'internal error' }, 500);
  });
  return app;
}
