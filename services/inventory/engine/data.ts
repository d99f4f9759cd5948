import type { Json, JsonObject } from '../../../shared/catalogue/index.js';

/** JSON data blobs: deep merge (later wins), and reading/writing values at slash-separated map paths. */
export type { JsonObject };

const isObject = (v: Json | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge; hashes merge recursively, anything else is replaced by the later value. */
export function deepMerge(...blobs: (JsonObject | null | undefined)[]): JsonObject {
  const out: JsonObject = {};
  for (const b of blobs) {
    if (!b) continue;
    for (const [k, v] of Object.entries(b)) {
      const cur = out[k];
      out[k] = isObject(cur) && isObject(v) ? deepMerge(cur, v) : structuredClone(v);
    }
  }
  return out;
}

export function getPath(blob: JsonObject, path: string): Json | undefined {
  let cur: Json | undefined = blob;
  for (const part of path.split('/')) {
    if (isObject(cur)) cur = cur[part];
    else if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else return undefined;
  }
  return cur;
}

/** Returns a copy of `blob` with `value` at `path`, creating hashes on the way. */
export function setPath(blob: JsonObject, path: string, value: Json): JsonObject {
  const parts = path.split('/');
  const root = structuredClone(blob);
  let cur: JsonObject = root;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (isObject(next)) cur = next;
    else {
      const fresh: JsonObject = {};
      cur[part] = fresh;
      cur = fresh;
    }
  }
  cur[parts.at(-1)!] = value;
  return root;
}

/** A blob holding only `value` at `path`. */
export const atPath = (path: string, value: Json): JsonObject => setPath({}, path, value);
