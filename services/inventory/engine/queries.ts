import { NotFoundError } from '../../../shared/errors.js';
import { deploymentRow } from '../store/deployments.js';
import {
  type NoderoleFilter,
  nodeDetail,
  nodeRows,
  noderoleDetail,
  noderoleOfNamedRole,
  noderoleRows,
  roleRows,
} from '../store/views.js';
import type { GraphTx } from './tx.js';

/** Read models for the API (their queries in store/views.ts), with paging and NotFound. */

/** A page: one row more than asked for is read, so `next` is null exactly on the last page. */
export interface Page {
  limit: number;
}
function paged<R>(rows: R[], limit: number, cursorOf: (r: R) => string): { rows: R[]; next: string | null } {
  if (rows.length <= limit) return { rows, next: null };
  const page = rows.slice(0, limit);
  return { rows: page, next: cursorOf(page.at(-1)!) };
}

/** Noderoles in cohort order, then id (keyset on both: a cohort is set at binding and never changes). */
export async function listNoderoles(
  g: GraphTx,
  f: NoderoleFilter,
  page: Page & { after?: { cohort: number; id: number } },
) {
  const rows = await noderoleRows(g, f, page.limit + 1, page.after);
  return paged(rows, page.limit, (r) => `${r.cohort}.${r.id}`);
}

export async function getNoderole(g: GraphTx, id: number) {
  const r = await noderoleDetail(g, id);
  if (!r) throw new NotFoundError(`no noderole ${id}`, { field: 'noderole' });
  return r;
}

export async function noderoleFor(g: GraphTx, nodeId: number, role: string): Promise<number> {
  const id = await noderoleOfNamedRole(g, nodeId, role);
  if (id === undefined) throw new NotFoundError(`node ${nodeId} has no role ${role}`, { field: 'role' });
  return id;
}

export async function getNodeDetail(g: GraphTx, id: number) {
  const n = await nodeDetail(g, id);
  if (!n) throw new NotFoundError(`no node ${id}`, { field: 'node' });
  return n;
}

/** Nodes in id order (keyset on id). */
export async function listNodes(g: GraphTx, page: Page & { after?: number }) {
  const rows = await nodeRows(g, page.limit + 1, page.after);
  return paged(rows, page.limit, (r) => String(r.id));
}

export async function getDeployment(g: GraphTx, id: number) {
  const d = await deploymentRow(g, id);
  if (!d) throw new NotFoundError(`no deployment ${id}`, { field: 'deployment' });
  return d;
}

export async function listRoles(g: GraphTx) {
  return roleRows(g);
}
