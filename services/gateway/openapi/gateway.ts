import { z } from 'zod';
import { serviceName } from '../../../shared/catalogue/index.js';
import { auditPage, createdToken, tokenInput, tokenRow } from '../routes/tokens.js';
import { ex, positive, q, type RouteDocs } from './docs.js';

const sseDoc = z.string().describe('text/event-stream: `id: <stream sequence>`, `data: <envelope JSON>`');

/** The gateway's own routes: health, accounts and audit, the event stream and these docs. */
export const gatewayRouteDocs: RouteDocs = {
  // the gateway itself
  'GET /api/v2/health': {
    tag: 'gateway',
    summary: "Every service's health (no token needed)",
    auth: 'none',
    response: ex(
      z.object({
        status: z.enum(['up', 'degraded']),
        up: z.number().int(),
        total: z.number().int(),
        services: z.array(
          z.object({
            service: serviceName,
            status: z.enum(['up', 'down']),
            instance: z.string().optional(),
            version: z.string().optional(),
            uptimeSeconds: z.number().optional(),
            error: z.string().optional(),
          }),
        ),
      }),
      {
        status: 'up',
        up: 1,
        total: 1,
        services: [
          { service: 'gateway', status: 'up', instance: 'gateway-a-1', version: '0.1.0', uptimeSeconds: 4 },
        ],
      },
    ),
    alsoAnswers: { 503: { description: 'a service is down (same body, status degraded)' } },
  },
  'POST /api/v2/tokens': {
    tag: 'accounts',
    summary: 'Create a named operator token (the token is in this answer only)',
    body: ex(tokenInput, { name: 'ci', role: 'read-only' }),
    status: 201,
    response: ex(createdToken, {
      id: 3,
      name: 'ci',
      role: 'read-only',
      createdAt: '2026-12-02T00:30:00.000Z',
      createdBy: 'launcher',
      revokedAt: null,
      token: 'cbt_q2xW0o7m0m2d1q7N0ZKJ2mV1m8bq1x2GfBz0C3JvR2k',
    }),
  },
  'GET /api/v2/tokens': {
    tag: 'accounts',
    summary: 'List named tokens (never the tokens themselves)',
    response: ex(z.object({ tokens: z.array(tokenRow) }), {
      tokens: [
        {
          id: 1,
          name: 'launcher',
          role: 'admin',
          createdAt: '2026-12-02T00:00:00.000Z',
          createdBy: null,
          revokedAt: null,
        },
      ],
    }),
  },
  'DELETE /api/v2/tokens/:id': {
    tag: 'accounts',
    summary: 'Revoke a token (refused by every gateway within 1 s)',
    params: { id: 'token id or name' },
    response: ex(tokenRow, {
      id: 3,
      name: 'ci',
      role: 'read-only',
      createdAt: '2026-12-02T00:30:00.000Z',
      createdBy: 'launcher',
      revokedAt: '2026-12-02T00:40:00.000Z',
    }),
  },
  'GET /api/v2/audit': {
    tag: 'accounts',
    summary: 'The audit log of mutating calls, newest first',
    query: {
      token: q(z.string(), 'only calls made with this token (its name)'),
      before: q(positive, 'cursor: the `next` of the previous page'),
      limit: q(positive, 'page size (default 100, at most 1000)'),
    },
    response: ex(auditPage, {
      entries: [
        {
          id: 42,
          at: '2026-12-02T00:31:00.000Z',
          token: 'launcher',
          role: 'admin',
          method: 'PUT',
          path: '/api/v2/deployments/web/commit',
          status: 200,
          result: 'ok',
          correlationId: '0b7f3c3e-8f5e-4d8e-9f7e-2f4b1e7c9a10',
        },
      ],
      next: null,
    }),
  },
  'GET /api/v2/whoami': {
    tag: 'gateway',
    summary: "The token's role",
    response: ex(z.object({ role: z.enum(['admin', 'read-only']) }), { role: 'admin' }),
  },
  'GET /api/v2/events': {
    tag: 'gateway',
    summary: 'The EVENTS stream as server-sent events',
    description:
      'Each event: `id:` its stream sequence, `data:` its envelope (`type` is `<event>.v<version>`). `Last-Event-ID` (or `since`) resumes after that sequence. A `: heartbeat` comment every 15 s; a client too far behind gets `event: dropped` and the end of the stream. The token may also be given as `?token=`.',
    query: {
      filter: q(z.string(), 'comma-separated event type patterns: `noderole.*`, `node.changed`, `dhcp.>`'),
      since: q(z.string().regex(/^\d{1,15}$/), 'start after this stream sequence'),
      token: q(z.string(), 'the operator token, for an EventSource (which sets no headers)'),
    },
    contentType: 'text/event-stream',
    response: ex(sseDoc, 'id: 42\ndata: {"type":"node.changed.v1","data":{}}\n\n'),
  },
  'GET /api/v2/openapi.json': {
    tag: 'gateway',
    summary: 'This document (no token needed)',
    auth: 'none',
    response: ex(z.object({ openapi: z.string() }).loose(), { openapi: '3.1.1' }),
  },
  'GET /api/docs': {
    tag: 'gateway',
    summary: 'This document, rendered (no token needed)',
    auth: 'none',
    contentType: 'text/html',
    response: ex(z.string(), '<!doctype html>…'),
  },
  'GET /api/docs/:file': {
    tag: 'gateway',
    summary: "The docs page's files: swagger-ui.css, swagger-ui-bundle.js, init.js (no token needed)",
    auth: 'none',
    params: { file: 'file name' },
    contentType: 'text/html',
    response: ex(z.string(), '/* … */'),
  },
};
