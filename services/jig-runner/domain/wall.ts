import type { JsonObject } from '../../../shared/catalogue/json.js';
import { type Json, setPathInto } from './paths.js';

/**
 * Script-jig value typing (DESIGN §4, #1): `true`/`false` (any case) and decimal integers are typed; a
 * JSON object or array is parsed; everything else stays a string ("face" and "OK" stay words). Empty
 * values are skipped, as in the original.
 */
export function typeWallValue(raw: string): unknown {
  const v = raw.replace(/\n$/, '');
  if (v === '') return undefined;
  if (/^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  if (/^[-+]?[0-9]+$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  }
  if (/^[[{]/.test(v)) {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  }
  return v;
}

/**
 * Builds the wall from the runner's listing: one line per written attribute, `<path>\t<base64 value>`.
 * Paths must be plain slash-separated names; anything else is rejected by name, never trusted.
 */
export function parseWallListing(listing: string): { wall: JsonObject; rejected: string[] } {
  const wall: Json = {};
  const rejected: string[] = [];
  for (const line of listing.split('\n')) {
    if (!line.trim()) continue;
    const tab = line.indexOf('\t');
    const path = (tab < 0 ? line : line.slice(0, tab)).replace(/^\.\//, '');
    if (tab < 0 || !/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(path) || path.split('/').length > 32) {
      rejected.push(path.slice(0, 200));
      continue;
    }
    const value = typeWallValue(Buffer.from(line.slice(tab + 1), 'base64').toString('utf8'));
    if (value !== undefined) setPathInto(wall, path, value);
  }
  // Every value is JSON: a boolean, a safe integer, a string or what JSON.parse made.
  return { wall: wall as JsonObject, rejected };
}
