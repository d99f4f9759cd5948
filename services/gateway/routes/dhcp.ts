import { Hono } from 'hono';
import type { GatewayDeps } from '../app.js';

/** REST resources of the dhcp domain, mounted under /api/v2. */
export function dhcpRoutes(_deps: GatewayDeps): Hono {
  const app = new Hono();
  return app;
}
