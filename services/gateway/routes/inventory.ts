import { Hono } from 'hono';
import type { GatewayDeps } from '../app.js';

/** REST resources of the inventory domain, mounted under /api/v2. */
export function inventoryRoutes(_deps: GatewayDeps): Hono {
  const app = new Hono();
  return app;
}
