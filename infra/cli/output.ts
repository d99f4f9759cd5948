import Table from 'cli-table3';
import { stringify } from 'yaml';

export const formats = ['table', 'json', 'yaml'] as const;
export type Format = (typeof formats)[number];

/** Columns shown by `--format table` for a resource's rows; other resources show their scalar fields. */
const columns: Record<string, string[]> = {
  nodes: ['id', 'name', 'state', 'alive', 'available', 'bootenv', 'deployment'],
  noderoles: ['id', 'node', 'role', 'deployment', 'state', 'runCount', 'cohort'],
  deployments: ['id', 'name', 'state', 'parentId', 'system', 'description'],
  deployment_roles: ['id', 'deployment', 'role'],
  roles: ['id', 'name', 'barclamp', 'jig', 'requires', 'flags'],
  networks: ['id', 'name', 'category', 'group', 'v4prefix', 'v6prefix', 'conduit', 'deploymentId'],
  ranges: ['id', 'network', 'name', 'first', 'last', 'conduit'],
  routers: ['id', 'network', 'address', 'pref'],
  allocations: ['id', 'network', 'range', 'node', 'address'],
  leases: ['address', 'mac', 'state', 'node', 'network', 'expiresAt'],
  attribs: ['name', 'role', 'map', 'description'],
  runs: ['id', 'noderoleId', 'node', 'role', 'state', 'reason'],
  tokens: ['id', 'name', 'role', 'createdAt', 'createdBy', 'revokedAt', 'token'],
  entries: ['id', 'at', 'token', 'method', 'path', 'status', 'result', 'correlationId'],
};

/** `{nodes: [...]}` (one array field, maybe with a cursor) reads as its rows; anything else as itself. */
export function rowsOf(value: unknown): { kind: string | undefined; rows: unknown[] } | undefined {
  if (Array.isArray(value)) return { kind: undefined, rows: value };
  if (typeof value !== 'object' || value === null) return undefined;
  const arrays = Object.entries(value).filter(([, v]) => Array.isArray(v));
  if (arrays.length !== 1) return undefined;
  const [kind, rows] = arrays[0]!;
  return { kind, rows: rows as unknown[] };
}

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  // A table is for reading; --format json or yaml shows everything.
  return s.length > 100 ? `${s.slice(0, 99)}…` : s;
};

function table(head: string[], rows: string[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  t.push(...rows);
  return t.toString();
}

/** Renders an API answer for the terminal (table) or for scripts (json, yaml). */
export function render(value: unknown, format: Format, kindHint?: string): string {
  if (format === 'json') return JSON.stringify(value, null, 2);
  if (format === 'yaml') return stringify(value).trimEnd();
  const list = rowsOf(value);
  if (list) {
    const objects = list.rows.filter(
      (r): r is Record<string, unknown> => typeof r === 'object' && r !== null,
    );
    if (objects.length === 0) return `(no ${list.kind ?? kindHint ?? 'rows'})`;
    const preset = columns[kindHint ?? list.kind ?? ''] ?? columns[list.kind ?? ''];
    const head =
      preset?.filter((k) => objects.some((o) => k in o)) ??
      Object.keys(objects[0]!).filter((k) => typeof objects[0]![k] !== 'object' || objects[0]![k] === null);
    return table(
      head,
      objects.map((o) => head.map((k) => cell(o[k]))),
    );
  }
  if (typeof value === 'object' && value !== null) {
    const t = new Table({ style: { head: [], border: [] } });
    for (const [k, v] of Object.entries(value)) t.push({ [k]: cell(v) });
    return t.toString();
  }
  return cell(value);
}
