import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { createApp } from '../services/gateway/app.js';
import { jsonSchema } from '../services/gateway/openapi.js';
import { type Example, routeDocs } from '../services/gateway/openapi-routes.js';
import type { Bus } from '../shared/bus/bus.js';
import type { HealthReport } from '../shared/catalogue/index.js';
import { systemClock } from '../shared/clock.js';
import { createLogger } from '../shared/log.js';

// The OpenAPI document against the hono app itself: every route documented, every example valid, the
// whole document valid OpenAPI 3.1, and the docs page served from the gateway (no CDN).
// No request here reaches the bus: the routes' handlers are never called.
const app = createApp({
  bus: {
    prefix: 'openapi-test',
    request: () => Promise.reject(new Error('this test has no bus')),
  } as unknown as Bus,
  log: createLogger('openapi-test', { level: 'silent' }),
  clock: systemClock,
  self: async () => ({ version: '9.9.9' }) as HealthReport,
  adminToken: 'openapi-test-admin-token',
  readOnlyToken: undefined,
});
const get = async (path: string) => app.request(path);
const documented = async (): Promise<any> => (await get('/api/v2/openapi.json')).json();

describe('OpenAPI document', () => {
  it('documents every route of the app under /api (the web UI at / is the only other route)', async () => {
    const routes = app.routes.filter((r) => r.method !== 'ALL');
    const outside = routes.filter((r) => !r.path.startsWith('/api/'));
    expect(outside.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /*']);
    const api = [
      ...new Set(routes.filter((r) => r.path.startsWith('/api/')).map((r) => `${r.method} ${r.path}`)),
    ];
    expect(api.length).toBeGreaterThan(90);
    const undocumented = api.filter((k) => !routeDocs[k]);
    expect(undocumented).toEqual([]);
    const stale = Object.keys(routeDocs).filter((k) => !api.includes(k));
    expect(stale).toEqual([]);

    const doc = await documented();
    for (const key of api) {
      const [method, path] = key.split(' ') as [string, string];
      const op = doc.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(op, key).toBeDefined();
      expect(op.summary, key).toBe(routeDocs[key]!.summary);
      const ok = Object.entries(op.responses).find(([code]) => /^2/.test(code)) as [string, any] | undefined;
      expect(ok?.[1].content, `${key} answers with a schema`).toBeDefined();
      for (const m of Object.values(ok![1].content) as any[]) expect(m.schema, key).toBeDefined();
    }
  });

  it('is served without a token and passes an OpenAPI 3.1 validator', async () => {
    const res = await get('/api/v2/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const doc: any = await res.json();
    expect(doc).toMatchObject({ openapi: '3.1.1', info: { title: 'Crowbar API', version: '9.9.9' } });
    const result = await new Validator().validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    // And the validator does refuse a broken document, so the check above means something.
    const broken = structuredClone(doc);
    broken.paths['/api/v2/nodes'].get.responses = 'none';
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('every documented example validates against its zod schema and against the JSON Schema served', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const checked: string[] = [];
    for (const [key, d] of Object.entries(routeDocs)) {
      const examples: [string, Example | undefined, 'input' | 'output'][] = [
        ['body', d.body, 'input'],
        ['response', d.response, 'output'],
        ...Object.entries(d.alsoAnswers ?? {}).map(([code, a]): [string, Example | undefined, 'output'] => [
          code,
          a.example,
          'output',
        ]),
      ];
      for (const [what, e, io] of examples) {
        if (!e) continue;
        const parsed = e.schema.safeParse(e.example);
        expect(parsed.error?.issues, `${key} ${what} example (zod)`).toBeUndefined();
        const validate = ajv.compile(jsonSchema(e.schema, io));
        // A response's example is what the schema is given (defaults not yet filled in); compare the
        // answer a client really gets, which is the parsed value, with the output schema.
        const wire = io === 'output' ? parsed.data : e.example;
        expect(validate(wire) ? [] : validate.errors, `${key} ${what} example (JSON Schema)`).toEqual([]);
        checked.push(`${key} ${what}`);
      }
    }
    expect(checked.length).toBeGreaterThan(120);
    // The served document carries the same examples.
    const doc = await documented();
    const op = doc.paths['/api/v2/deployments'].post;
    expect(op.requestBody.content['application/json'].example).toEqual(
      routeDocs['POST /api/v2/deployments']!.body!.example,
    );
    // An example that does not fit its schema is caught.
    const wrong = routeDocs['POST /api/v2/deployments']!.body!;
    expect(wrong.schema.safeParse({ name: 'Not A Name' }).success).toBe(false);
    expect(ajv.compile(jsonSchema(wrong.schema, 'input'))({ name: 'Not A Name' })).toBe(false);
  });

  it('request bodies are the schemas the routes validate with', async () => {
    const doc = await documented();
    const body = doc.paths['/api/v2/nodes'].post.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(['name']);
    expect(body.properties.bootenv.pattern).toBe('^[a-z0-9][-_.a-z0-9]*$');
    // The route refuses what the document says is wrong, naming the field.
    const res = await app.request('/api/v2/nodes', {
      method: 'POST',
      headers: { authorization: 'Bearer openapi-test-admin-token', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'n1.lab.crowbar.test', bootenv: 'Not Valid' }),
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { field?: string }).field).toBe('bootenv');
  });

  it('renders the docs at /api/docs from the bundled renderer, offline', async () => {
    const page = await get('/api/docs');
    expect(page.status).toBe(200);
    const html = await page.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.sort()).toEqual([
      '/api/docs/init.js',
      '/api/docs/swagger-ui-bundle.js',
      '/api/docs/swagger-ui.css',
    ]);
    for (const ref of refs) {
      const r = await get(ref);
      expect(r.status, ref).toBe(200);
      expect((await r.text()).length, ref).toBeGreaterThan(ref.endsWith('init.js') ? 20 : 10_000);
    }
    const init = await (await get('/api/docs/init.js')).text();
    expect(init).toContain("url: '/api/v2/openapi.json'");
    expect(html + init).not.toMatch(/https?:\/\//);
    expect((await get('/api/docs/..%2Fpackage.json')).status).toBe(404);
    expect((await get('/api/docs/index.html')).status).toBe(404);
    // The rest of the API still wants a token.
    expect((await get('/api/v2/nodes')).status).toBe(401);
  });
});
