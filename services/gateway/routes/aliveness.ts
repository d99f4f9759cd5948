import { Hono } from 'hono';
import type { GatewayDeps } from '../app.js';

/** REST resources of the aliveness domain, mounted under /api/v2. */
export function alivenessRoutes(_deps: GatewayDeps): Hono {
  const app = new Hono();
  return app;
}
