import { type Context, Hono } from 'hono';
import { dnsFilterChanges, dnsFilterInput, dnsMessages } from '../../../shared/catalogue/index.js';
import type { GatewayDeps } from '../app.js';
import { parseBody } from '../body.js';

/** A filter named by id (digits) or by name, as everywhere in the API. */
const ref = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : s);

/** REST resources of the dns domain, mounted under /api/v2: name filters, zones as served, re-sync. */
export function dnsRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const ask = deps.bus.request.bind(deps.bus);
  app.get('/dns_name_filters', async (c) => c.json((await ask(dnsMessages.listFilters, {})).filters));
  app.post('/dns_name_filters', async (c) =>
    c.json(await ask(dnsMessages.createFilter, await parseBody(c, dnsFilterInput, 'name filter')), 201),
  );
  app.get('/dns_name_filters/:id', async (c) =>
    c.json(await ask(dnsMessages.getFilter, { filter: ref(c.req.param('id')) })),
  );
  const update = async (c: Context) =>
    c.json(
      await ask(dnsMessages.updateFilter, {
        filter: ref(c.req.param('id') ?? ''),
        changes: await parseBody(c, dnsFilterChanges, 'name filter changes'),
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
