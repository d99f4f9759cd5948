import { z } from 'zod';
import {
  type InventoryOp,
  inventoryOpRpcs,
  inventoryOps,
  json,
  jsonObject,
  networkCategory,
  type RpcDef,
} from '../../../shared/catalogue/index.js';

/**
 * What a route's documentation is made of, and the pieces the resource families' files share. Each
 * family (`inventory.ts`, `ipam.ts`, …) documents its routes; `../openapi-routes.ts` joins them.
 */

/** A schema with an example that must validate against it (test/openapi.test.ts checks each). */
export interface Example {
  schema: z.ZodType;
  example: unknown;
}
export interface QueryParam {
  schema: z.ZodType;
  description: string;
}
/** How one route is documented; the key is `METHOD /api/v2/path` as the hono app has it. */
export interface RouteDoc {
  tag: string;
  summary: string;
  description?: string;
  /** Path parameter descriptions; a parameter not named here is "id or name". */
  params?: Record<string, string>;
  query?: Record<string, QueryParam>;
  body?: Example;
  /** The success answer: its status (200 unless said) and body. */
  status?: 200 | 201 | 202;
  response: Example;
  /** Other answers that are not errors (e.g. the anneal's 202 and 409, a health 503). */
  alsoAnswers?: Record<number, { description: string; example?: Example }>;
  /** `operator` (default): an operator token; `none`: public; `node`: the node's own credential. */
  auth?: 'operator' | 'none' | 'node' | 'discovery';
  /** The answer is not JSON. */
  contentType?: 'text/event-stream' | 'text/html';
}
/** One resource family's routes. */
export type RouteDocs = Record<string, RouteDoc>;

export const ex = <S extends z.ZodType>(schema: S, example: z.input<S>): Example => ({ schema, example });
export const fromRpc = (d: RpcDef): Example => ({ schema: d.response, example: d.exampleResponse });
/** The one array field of an RPC answer, for routes that answer it bare. */
export const arrayOf = <R extends z.ZodObject>(
  d: RpcDef<z.ZodType, R>,
  key: keyof R['shape'] & string,
): Example => ({
  schema: d.response.shape[key] as z.ZodType,
  example: (d.exampleResponse as Record<string, unknown>)[key],
});
export const inv = (op: Exclude<InventoryOp, 'node.rotate_credential'>) => fromRpc(inventoryOpRpcs[op]);
/** Inventory's op as the body (an op whose path carries some fields omits them where it is used). */
export const body = <O extends InventoryOp>(op: O, example: z.input<(typeof inventoryOps)[O]>) =>
  ex(inventoryOps[op], example);

export const idOrName = z.union([z.number().int().positive(), z.string().min(1).max(255)]);
export const q = (schema: z.ZodType, description: string): QueryParam => ({ schema, description });
export const positive = z.string().regex(/^\d{1,9}$/);

export const dataBody = ex(z.object({ data: jsonObject }), { data: { test: { greeting: 'hi' } } });
export const valueBody = ex(z.object({ value: json }), { value: 'r1' });
export const attribParams = { id: 'id (or name, for nodes)', attrib: 'the attrib name, e.g. test-rack' };

/** Every list's paging: keyset cursors, so a page never shifts when rows are added. */
export const pageQuery = {
  limit: q(positive, "page size (default 500, at most 1000); the answer's `next` is null on the last page"),
  cursor: q(z.string(), 'the `next` of the page before (opaque); left out, the first page'),
};
export const categoryQuery = { category: q(networkCategory, 'network category') };
export const bootEventQuery = {
  before: q(positive, 'cursor: only events with a smaller id (newest first)'),
  limit: q(positive, 'at most this many (default 100, at most 1000)'),
};
