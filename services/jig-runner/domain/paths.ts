export type Json = Record<string, unknown>;

/** Sets `value` at a slash-separated path inside `root`, creating hashes on the way (mutates root). */
export function setPathInto(root: Json, path: string, value: unknown): void {
  const parts = path.split('/');
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[part] = {};
    cur = cur[part] as Json;
  }
  cur[parts.at(-1)!] = value;
}
