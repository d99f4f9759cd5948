/** The REST API, with the operator token from session storage. Errors keep the API's message and field. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const tokenKey = 'crowbar.token';
export const session = {
  token: () => sessionStorage.getItem(tokenKey),
  set: (t: string) => sessionStorage.setItem(tokenKey, t),
  clear: () => sessionStorage.removeItem(tokenKey),
};

export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  token = session.token(),
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`/api/v2${path}`, init);
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const b = (parsed ?? {}) as { message?: string; field?: string };
    throw new ApiError(res.status, b.message ?? `${method} ${path}: HTTP ${res.status}`, b.field);
  }
  return parsed as T;
}

/**
 * A GET; a list (`{nodes: [...], next}`) comes with the rows of all its pages (`next` passed back as
 * `cursor`), unless the path asks for one page itself (`limit` or `cursor` in its query).
 */
export async function get<T>(path: string): Promise<T> {
  const first = await api<T>('GET', path);
  if (/[?&](limit|cursor)=/.test(path)) return first;
  const key = listKey(first);
  if (!key) return first;
  let last = first as Record<string, unknown>;
  const rows = [...(last[key] as unknown[])];
  while (typeof last.next === 'string' && listKey(last) === key) {
    const sep = path.includes('?') ? '&' : '?';
    last = await api<Record<string, unknown>>('GET', `${path}${sep}cursor=${encodeURIComponent(last.next)}`);
    rows.push(...((last[key] as unknown[] | undefined) ?? []));
  }
  return { ...last, [key]: rows, next: null } as T;
}

/** The one array field of a list answer that has a `next` cursor. */
function listKey(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || typeof (v as { next?: unknown }).next !== 'string') return null;
  const arrays = Object.entries(v).filter(([, x]) => Array.isArray(x));
  return arrays.length === 1 ? arrays[0]![0] : null;
}

export type NoderoleState = 'error' | 'active' | 'todo' | 'transition' | 'blocked' | 'proposed';
export const states: NoderoleState[] = ['error', 'transition', 'proposed', 'todo', 'blocked', 'active'];

export interface Node {
  id: number;
  name: string;
  description?: string;
  admin: boolean;
  system: boolean;
  alive: boolean;
  available: boolean;
  bootenv: string;
  deploymentId: number;
  deployment: string;
  state?: NoderoleState;
  states?: NoderoleState[];
}
export interface NodeDetail extends Node {
  sshHostKey: string | null;
  aliveReason?: string;
  hint: Record<string, unknown>;
  discovery: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}
export interface Noderole {
  id: number;
  nodeId: number;
  node: string;
  roleId: number;
  role: string;
  deploymentId: number;
  deployment: string;
  state: NoderoleState;
  cohort: number;
  runCount: number;
  runlog?: string;
  updatedAt?: string;
  proposedData?: Record<string, unknown>;
  committedData?: Record<string, unknown>;
}
export interface Deployment {
  id: number;
  name: string;
  parentId: number | null;
  state: 'proposed' | 'committed';
  system: boolean;
  description?: string;
}
export interface Role {
  id: number;
  name: string;
  barclamp: string;
  description: string;
  jig: string;
  flags: string[];
  requires: string[];
}
export interface DeploymentRole {
  id: number;
  deploymentId: number;
  deployment: string;
  role: string;
  proposedData: Record<string, unknown>;
  committedData: Record<string, unknown>;
}
export interface Graph {
  vertices: { id: number; node: string; role: string; state: NoderoleState; cohort: number }[];
  edges: { parent: number; child: number }[];
}
export interface Run {
  id: number;
  noderoleId: number;
  nodeId: number;
  role: string;
  lane: string;
  state: string;
  reason: string;
  createdAt: string;
}
export interface Health {
  status: string;
  up: number;
  total: number;
  services: {
    service: string;
    status: 'up' | 'down';
    instance?: string;
    version?: string;
    uptimeSeconds?: number;
    error?: string;
  }[];
}
export interface Preview {
  deployment: { id: number; name: string; state: string };
  noderoles: {
    id: number;
    nodeId: number;
    node: string;
    roleId: number;
    role: string;
    cohort: number;
    destructive: boolean;
    from: string;
    to: string;
  }[];
  nodes: { id: number; name: string }[];
  bootenvChanges: { nodeId: number; node: string; from: string; to: string }[];
}
export interface Network {
  id: number;
  name: string;
  category: string;
  group: string;
  deploymentId: number;
  subnets: string[];
  v6prefix: string | null;
  description: string;
  conduit: string;
  vlan: number;
  ranges: { id: number; name: string; family: string; first: string; last: string }[];
  routers?: { id?: number; address: string; pref?: number }[];
}
export interface Allocation {
  id: number;
  nodeId: number;
  node: string;
  network: string;
  range: string;
  address: string;
  family: string;
}
