import { type Context, Hono } from 'hono';
import { dnsMessages } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import type { GatewayDeps } from '../app.js';

/** A filter named by id (digits) or by name, as everywhere in the API. */
const ref = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : s);

async function body(c: Context): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = await c.req.json();
  } catch (cause) {
    throw new ValidationError('request body is not JSON', { cause, field: 'body' });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ValidationError('request body must be a JSON object', { field: 'body' });
  return v as Record<string, unknown>;
}

/** REST resources of the dns domain, mounted under /api/v2: name filters, zones as served, re-sync. */
export function dnsRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const ask = deps.bus.request.bind(deps.bus);
  app.get('/dns_name_filters', async (c) => c.json((await ask(dnsMessages.listFilters, {})).filters));
  app.post('/dns_name_filters', async (c) =>
    c.json(await ask(dnsMessages.createFilter, (await body(c)) as never), 201),
  );
  app.get('/dns_name_filters/:id', async (c) =>
    c.json(await ask(dnsMessages.getFilter, { filter: ref(c.req.param('id')) })),
  );
  const update = async (c: Context) =>
    c.json(
      await ask(dnsMessages.updateFilter, {
        filter: ref(c.req.param('id') ?? ''),
        changes: (await body(c)) as never,
      }),
    );
  app.put('/dns_name_filters/:id', update);
  app.patch('/dns_name_filters/:id', update);
  app.delete('/dns_name_filters/:id', async (c) =>
    c.json(await ask(dnsMessages.deleteFilter, { filter: ref(c.req.param('id')) })),
  );
  app.get('/dns/zones', async (c) => c.json((await ask(dnsMessages.listZones, {})).zones));
  app.get('/dns/zones/:zone', async (c) =>
    c.json(await ask(dnsMessages.getZone, { zone: c.req.param('zone') })),
  );
  app.post('/dns/resync', async (c) => c.json(await ask(dnsMessages.resync, {}, { timeoutMs: 60_000 })));
  app.get('/dns/client', async (c) => c.json(await ask(dnsMessages.clientConfig, {})));
  return app;
}
