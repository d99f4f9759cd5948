import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Hono } from 'hono';
import { z } from 'zod';
import { type Example, type RouteDoc, routeDocs } from './openapi-routes.js';

/**
 * The OpenAPI 3.1 document of the gateway, built from the hono app's own routes and, for each, the zod
 * schemas the route validates its input with and its answer's schema (`openapi-routes.ts`) — no second
 * copy of a schema. Served at `/api/v2/openapi.json`; rendered at `/api/docs` by Swagger UI from the
 * `swagger-ui-dist` package (served by the gateway, so it works offline).
 */
export interface AppRoute {
  method: string;
  path: string;
}

type JsonSchema = Record<string, unknown>;

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of a zod schema: what a client sends, or what it gets. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  delete s.$schema;
  return s;
}

/** The routes the document covers: every method of the app under /api/ (the web UI's files are not API). */
export const apiRoutes = (routes: readonly AppRoute[]): AppRoute[] => {
  const seen = new Set<string>();
  return routes.filter((r) => {
    const key = `${r.method} ${r.path}`;
    if (r.method === 'ALL' || !r.path.startsWith('/api/') || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
};

const errorBody = z.object({
  code: z.enum([
    'not_found',
    'conflict',
    'invalid',
    'invalid_transition',
    'unavailable',
    'unauthorized',
    'forbidden',
    'internal',
  ]),
  message: z.string(),
  /** The request field the error is about, as the caller wrote it. */
  field: z.string().optional(),
  /** The rule a conflict broke. */
  rule: z.string().optional(),
});
const errors: Record<string, { description: string; example: unknown }> = {
  '401': {
    description: 'no token, or not a valid one',
    example: { code: 'unauthorized', message: 'invalid operator token' },
  },
  '403': {
    description: 'the token may not do this (read-only, or a discovery token)',
    example: { code: 'forbidden', message: 'the read-only token cannot change anything' },
  },
  '404': {
    description: 'not found',
    example: { code: 'not_found', message: 'no node ghost', field: 'node' },
  },
  '409': {
    description: 'a conflict, naming the rule',
    example: { code: 'conflict', message: 'deployment system cannot be deleted', rule: 'system deployment' },
  },
  '422': {
    description: 'invalid input, naming the field',
    example: { code: 'invalid', message: 'name: must be a lower-case FQDN', field: 'name' },
  },
  '503': {
    description: 'a service behind the gateway does not answer',
    example: { code: 'unavailable', message: 'inventory did not answer' },
  },
};

const media = (e: Example, io: 'input' | 'output', contentType = 'application/json') => ({
  [contentType]: { schema: jsonSchema(e.schema, io), example: e.example },
});

const operationId = (method: string, path: string) =>
  method.toLowerCase() +
  path
    .replace(/^\/api\/(v2\/)?/, '')
    .split(/[/_-]/)
    .filter(Boolean)
    .map((w) =>
      w.startsWith(':') ? `By${w[1]!.toUpperCase()}${w.slice(2)}` : w[0]!.toUpperCase() + w.slice(1),
    )
    .join('')
    .replace(/\W/g, '');

function operation(method: string, path: string, doc: RouteDoc | undefined) {
  const names = [...path.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
  const parameters = [
    ...names.map((name) => ({
      name,
      in: 'path',
      required: true,
      description: doc?.params?.[name] ?? 'id or name',
      schema: { type: 'string' },
    })),
    ...Object.entries(doc?.query ?? {}).map(([name, p]) => ({
      name,
      in: 'query',
      required: false,
      description: p.description,
      schema: jsonSchema(p.schema, 'input'),
    })),
  ];
  if (!doc)
    return {
      summary: 'undocumented',
      operationId: operationId(method, path),
      parameters,
      responses: { default: { description: 'undocumented' } },
    };
  const auth = doc.auth ?? 'operator';
  const status = String(doc.status ?? 200);
  const responses: Record<string, unknown> = {
    [status]: {
      description: doc.summary,
      content: media(doc.response, 'output', doc.contentType),
    },
  };
  for (const [code, also] of Object.entries(doc.alsoAnswers ?? {}))
    responses[code] = {
      description: also.description,
      content: media(also.example ?? doc.response, 'output', doc.contentType),
    };
  for (const code of ['401', '403', '404', '409', '422', '503']) {
    if (auth === 'none' && (code === '401' || code === '403')) continue;
    if (!(code in responses)) responses[code] = { $ref: `#/components/responses/E${code}` };
  }
  return {
    tags: [doc.tag],
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    operationId: operationId(method, path),
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body ? { requestBody: { required: true, content: media(doc.body, 'input') } } : {}),
    responses,
    security:
      auth === 'none'
        ? []
        : auth === 'node'
          ? [{ nodeCredential: [] }]
          : auth === 'discovery'
            ? [{ discoveryToken: [] }, { nodeCredential: [] }]
            : [{ operatorToken: [] }],
  };
}

export function openApiDocument(routes: readonly AppRoute[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of apiRoutes(routes)) {
    const p = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    paths[p] ??= {};
    paths[p][r.method.toLowerCase()] = operation(r.method, r.path, routeDocs[`${r.method} ${r.path}`]);
  }
  return {
    openapi: '3.1.1',
    info: {
      title: 'Crowbar API',
      version,
      description:
        'The operator API of Crowbar, a bare-metal provisioning control plane (OpenCrowbar API v2 resources). ' +
        'Ids or names are accepted wherever the original accepted either. Errors are `{code, message, field?, rule?}`.',
    },
    servers: [{ url: '/' }],
    tags: [...new Set(Object.values(routeDocs).map((d) => d.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: { Error: jsonSchema(errorBody, 'output') },
      responses: Object.fromEntries(
        Object.entries(errors).map(([code, e]) => [
          `E${code}`,
          {
            description: e.description,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/Error' }, example: e.example },
            },
          },
        ]),
      ),
      securitySchemes: {
        operatorToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'An operator token: admin, or read-only (GET only). `npm start` prints the admin token.',
        },
        nodeCredential: {
          type: 'http',
          scheme: 'bearer',
          description: "A node's own credential, issued at registration.",
        },
        discoveryToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A discovery token (in a discovery boot script) or a join token (POST /api/v2/join_tokens).',
        },
      },
    },
  };
}

/** The files of the docs page: the renderer's two, by name only (no paths from the request). */
const rendererFiles: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};
const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Crowbar API</title><link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script><script src="/api/docs/init.js"></script></body>
</html>
`;
const init = `window.ui = SwaggerUIBundle({ url: '/api/v2/openapi.json', dom_id: '#docs', deepLinking: true });\n`;

/** `/api/v2/openapi.json` and `/api/docs` (mount at `/api`); `routes` is read at the first request. */
export function openApiRoutes(opts: {
  routes: () => readonly AppRoute[];
  version: () => Promise<string>;
}): Hono {
  const app = new Hono();
  let doc: string | undefined;
  const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  app.get('/v2/openapi.json', async (c) => {
    doc ??= JSON.stringify(openApiDocument(opts.routes(), await opts.version()));
    return c.body(doc, 200, { 'content-type': 'application/json; charset=utf-8' });
  });
  app.get('/docs', (c) => c.html(page));
  app.get('/docs/:file', async (c) => {
    const file = c.req.param('file');
    if (file === 'init.js') return c.body(init, 200, { 'content-type': 'text/javascript; charset=utf-8' });
    const type = rendererFiles[file];
    if (!type) return c.json({ code: 'not_found', message: `no docs file ${file}` }, 404);
    return c.body(await readFile(join(dir, file)), 200, {
      'content-type': type,
      'cache-control': 'public, max-age=3600',
    });
  });
  return app;
}
