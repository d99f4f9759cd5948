/**
 * The run's attributes as one flat file the node's runner reads with awk and base64 (no jq needed on the
 * node): a line `<path>\t<base64 value>` for every object, array and value, paths slash-separated with
 * array indices as numbers. Strings are stored raw, everything else as compact JSON; nulls are left out.
 * Keys that cannot be a path segment (containing `/`, tab or newline) are left out too.
 */
export function flattenAttributes(data: unknown): string {
  const lines: string[] = [];
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const walk = (value: unknown, path: string) => {
    if (value === null || value === undefined) return;
    if (path) lines.push(`${path}\t${b64(typeof value === 'string' ? value : JSON.stringify(value))}`);
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, path ? `${path}/${i}` : String(i));
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (k === '' || /[/\t\n]/.test(k)) continue;
        walk(v, path ? `${path}/${k}` : k);
      }
    }
  };
  walk(data, '');
  return lines.length ? `${lines.join('\n')}\n` : '';
}
