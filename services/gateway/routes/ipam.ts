import { Hono } from 'hono';
import type { GatewayDeps } from '../app.js';

/** REST resources of the ipam domain, mounted under /api/v2. */
export function ipamRoutes(_deps: GatewayDeps): Hono {
  const app = new Hono();
  return app;
}
