import type { Context } from 'hono';
import type { z } from 'zod';
import { parsePayload } from '../../shared/bus/bus.js';
import { ValidationError } from '../../shared/errors.js';

/**
 * The request's body as a JSON object, the one rule for every route: an empty body reads as `{}` (the
 * route's schema then accepts it when all its fields are optional, and names the first missing field
 * otherwise); anything else must be a JSON object, or the answer is a 422 saying so.
 */
export async function jsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (!text.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ValidationError('request body is not valid JSON', { field: 'body' });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ValidationError('request body must be a JSON object', { field: 'body' });
  return parsed as Record<string, unknown>;
}

/** The body checked against `schema` (a 422 names the field as the caller wrote it). */
export async function parseBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  what: string,
): Promise<z.infer<S>> {
  return parsePayload(schema, await jsonObject(c), what);
}
