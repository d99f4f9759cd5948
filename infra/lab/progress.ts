import { readFile } from 'node:fs/promises';
import type { Lab } from './fleet.js';
import { labNames } from './network.js';
import { run } from './shell.js';

/** The operator API, as the lab uses it: JSON in and out with the admin token. */
export interface Api {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export function apiClient(base: string, token: string): Api {
  return {
    async call(method, path, body) {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await r.text();
      try {
        return { status: r.status, body: JSON.parse(text) };
      } catch {
        return { status: r.status, body: text };
      }
    },
  };
}

export type Stage = 'off' | 'booting' | 'registered' | 'discovered' | 'installing' | 'installed';

export interface NodeStatus {
  label: string;
  mac: string;
  stage: Stage;
  /** The node's id and name once it registered. */
  id?: number;
  name?: string;
  available?: boolean;
  alive?: boolean;
  /** Its noderoles that are not ACTIVE, as `role=state` (why a node is stuck). */
  waiting?: string[];
}

const discoveryRole = 'crowbar-managed-node';
const installRole = 'provisioner-os-install';

/** Every row of a paged list (`limit` 1000 a page, following `next`): a 200-node fleet has thousands. */
async function allPages(api: Api, path: string, key: string): Promise<unknown[]> {
  const rows: unknown[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const r = await api.call(
      'GET',
      `${path}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    if (r.status !== 200) throw new Error(`the API answered ${r.status} to GET ${path}`);
    const body = r.body as Record<string, unknown> & { next?: string | null };
    rows.push(...((body[key] as unknown[]) ?? []));
    cursor = body.next ?? null;
    if (!cursor) return rows;
  }
  throw new Error(`GET ${path}: more than 1000 pages`);
}

/**
 * Where each lab node is, from the operator API only (as an operator would see it): registered (a node
 * named after its MAC), discovered (its discovery roles ACTIVE: crowbar-managed-node, the top of the
 * discovery graph), installed (bootenv local, alive, its install noderole ACTIVE).
 */
export async function fleetStatus(api: Api, lab: Lab): Promise<NodeStatus[]> {
  const [nodes, noderoles] = await Promise.all([
    allPages(api, '/nodes', 'nodes'),
    allPages(api, '/node_roles', 'noderoles'),
  ]);
  const byPrefix = new Map<
    string,
    { id: number; name: string; alive: boolean; available: boolean; bootenv: string }
  >();
  for (const n of nodes as {
    id: number;
    name: string;
    alive: boolean;
    available: boolean;
    bootenv: string;
  }[])
    byPrefix.set(n.name.split('.')[0]!, n);
  const active = new Map<string, Set<string>>();
  const bound = new Map<string, Set<string>>();
  const waiting = new Map<string, string[]>();
  for (const r of noderoles as {
    node: string;
    role: string;
    state: string;
  }[]) {
    if (!bound.has(r.node)) bound.set(r.node, new Set());
    bound.get(r.node)!.add(r.role);
    if (r.state !== 'active') {
      if (!waiting.has(r.node)) waiting.set(r.node, []);
      waiting.get(r.node)!.push(`${r.role}=${r.state}`);
      continue;
    }
    if (!active.has(r.node)) active.set(r.node, new Set());
    active.get(r.node)!.add(r.role);
  }
  return lab.machines().map((ln) => {
    const n = byPrefix.get(`d${ln.spec.mac.replaceAll(':', '-')}`);
    const base = { label: ln.spec.label, mac: ln.spec.mac };
    if (!n) return { ...base, stage: ln.power() === 'on' ? 'booting' : 'off' };
    const roles = active.get(n.name) ?? new Set<string>();
    let stage: Stage = 'registered';
    if (roles.has(discoveryRole)) stage = 'discovered';
    if (bound.get(n.name)?.has(installRole)) stage = 'installing';
    if (roles.has(installRole) && n.bootenv === 'local' && n.alive && roles.has(discoveryRole))
      stage = 'installed';
    return {
      ...base,
      stage,
      id: n.id,
      name: n.name,
      available: n.available,
      alive: n.alive,
      waiting: waiting.get(n.name) ?? [],
    };
  });
}

/** `12 booting, 30 registered, 8 discovered` — only the stages some node is in. */
export function summary(status: NodeStatus[]): string {
  const counts = new Map<Stage, number>();
  for (const s of status) counts.set(s.stage, (counts.get(s.stage) ?? 0) + 1);
  const order: Stage[] = ['off', 'booting', 'registered', 'discovered', 'installing', 'installed'];
  return order
    .filter((s) => counts.has(s))
    .map((s) => `${counts.get(s)} ${s}`)
    .join(', ');
}

export function reached(s: NodeStatus, goal: 'discovered' | 'installed'): boolean {
  return goal === 'installed' ? s.stage === 'installed' : s.stage === 'discovered' || s.stage === 'installed';
}

/** Binds provisioner-os-install to discovered nodes (deployment `lab-install`) and commits it. */
export async function bindInstalls(api: Api, status: NodeStatus[], bound: Set<number>): Promise<void> {
  const ready = status.filter((s) => s.stage === 'discovered' && s.id !== undefined && !bound.has(s.id));
  if (ready.length === 0) return;
  if (bound.size === 0) await api.call('POST', '/deployments', { name: 'lab-install', parent: 'system' });
  for (const s of ready) {
    const r = await api.call('POST', '/node_roles', {
      node: s.name,
      role: 'provisioner-os-install',
      deployment: 'lab-install',
    });
    if (r.status === 201 || r.status === 409) bound.add(s.id!);
  }
  await api.call('PUT', '/deployments/lab-install/commit');
}

/** Proportional set size of a process (KB), 0 when it is gone. */
async function pssKb(pid: number | string): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  return Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
}

/** Memory of every process in the lab's namespaces and of its QEMUs (proportional set size, MB). */
export async function nodeMemoryMb(lab: Lab): Promise<number> {
  let kb = 0;
  for (const n of lab.nodes) {
    const pids = (await run(['ip', 'netns', 'pids', labNames(lab.name).netns(n.spec.index)]).catch(() => ''))
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of pids) kb += await pssKb(pid);
  }
  for (const v of lab.vms) {
    const pid = v.pid();
    if (pid !== null) kb += await pssKb(pid);
  }
  return kb / 1024;
}

/** `n3 d02-cb-….lab (registered, not alive; crowbar-access=todo)`: why a node did not get there. */
export function describeMissing(s: NodeStatus): string {
  const why = `${s.stage}${s.alive === false ? ', not alive' : ''}${s.waiting?.length ? `; ${s.waiting.join(' ')}` : ''}`;
  return `${s.label} ${s.name ?? s.mac} (${why})`;
}
