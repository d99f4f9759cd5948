import { z } from 'zod';

/** Any JSON value: what an attrib holds, and what data blobs are made of. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A JSON object: hints, discovery data, proposed and committed data, walls. */
export type JsonObject = { [key: string]: Json };

function isJson(v: unknown): v is Json {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJson);
  if (typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(v).every(isJson);
}

/**
 * A JSON value, checked all the way down. A custom check rather than a recursive zod union: the OpenAPI
 * document shows it as `{}` (any value), as it did before it was typed, with no `$ref` to resolve.
 */
export const json = z.custom<Json>(isJson, { message: 'must be a JSON value' });
export const jsonObject = z.record(z.string(), json);

/**
 * A JSON object whose values are typed as JSON but not walked: for the anneal's hot path (a run's staged
 * data, a node's hint, a wall), large trees that arrive off the bus, where JSON.parse made them and so
 * they are JSON already, and that the sender built as typed JSON.
 */
export const wireJsonObject = z.record(
  z.string(),
  z.custom<Json>(() => true),
);

/**
 * `v` as the JSON it is sent as: what JSON.stringify keeps (a Date becomes its ISO string; undefined,
 * functions and symbols go). For objects built in code (health details, a service's wall) before they
 * cross the bus as a JSON object.
 */
export function asJsonObject(v: object): JsonObject {
  return JSON.parse(JSON.stringify(v)) as JsonObject;
}
