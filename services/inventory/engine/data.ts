/** JSON data blobs: deep merge (later wins), and reading/writing values at slash-separated map paths. */
export type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge; hashes merge recursively, anything else is replaced by the later value. */
export function deepMerge(...blobs: (Json | null | undefined)[]): Json {
  const out: Json = {};
  for (const b of blobs) {
    if (!b) continue;
    for (const [k, v] of Object.entries(b)) {
      const cur = out[k];
      out[k] = isObject(cur) && isObject(v) ? deepMerge(cur, v) : structuredClone(v);
    }
  }
  return out;
}

export function getPath(blob: Json, path: string): unknown {
  let cur: unknown = blob;
  for (const part of path.split('/')) {
    if (isObject(cur)) cur = cur[part];
    else if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else return undefined;
  }
  return cur;
}

/** Returns a copy of `blob` with `value` at `path`, creating hashes on the way. */
export function setPath(blob: Json, path: string, value: unknown): Json {
  const parts = path.split('/');
  const root = structuredClone(blob);
  let cur: Json = root;
  for (const part of parts.slice(0, -1)) {
    if (!isObject(cur[part])) cur[part] = {};
    cur = cur[part] as Json;
  }
  cur[parts.at(-1)!] = value;
  return root;
}

/** A blob holding only `value` at `path`. */
export const atPath = (path: string, value: unknown): Json => setPath({}, path, value);
