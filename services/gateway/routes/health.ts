import { Hono } from 'hono';
import { type HealthReport, health, serviceNames } from '../../../shared/catalogue/index.js';
import type { GatewayDeps } from '../app.js';

type Row = {
  service: string;
  status: 'up' | 'down';
  instance?: string;
  version?: string;
  uptimeSeconds?: number;
  error?: string;
};

/** GET /health: every service's answer; 503 when any of them is down. */
export function healthRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get('/health', async (c) => {
    const rows = await Promise.all(
      serviceNames.map(async (s): Promise<Row> => {
        try {
          const r: HealthReport =
            s === 'gateway' ? await deps.self() : await deps.bus.request(health[s], {}, { timeoutMs: 1500 });
          return {
            service: s,
            status: 'up',
            instance: r.instance,
            version: r.version,
            uptimeSeconds: r.uptimeSeconds,
          };
        } catch (err) {
          return { service: s, status: 'down', error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    const up = rows.filter((r) => r.status === 'up').length;
    const body = { status: up === rows.length ? 'up' : 'degraded', up, total: rows.length, services: rows };
    return c.json(body, up === rows.length ? 200 : 503);
  });
  return app;
}
