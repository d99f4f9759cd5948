import { type SQL, sql } from 'drizzle-orm';
import type { NodeSummary } from '../../../shared/catalogue/index.js';
import type { StoreTx } from './query.js';

/** Queries on `inventory.nodes`. */

type Id = { id: number } | undefined;

export const nodeById = (q: StoreTx, id: number) =>
  q.one<{ id: number }>(sql`select id from inventory.nodes where id = ${id}`);
/** `name` lower-cased already. */
export const nodeByName = (q: StoreTx, name: string) =>
  q.one<{ id: number }>(sql`select id from inventory.nodes where name = ${name}`);
/** The first admin node. */
export const firstAdminNode = (q: StoreTx): Promise<Id> =>
  q.one<{ id: number }>(sql`select id from inventory.nodes where admin order by id limit 1`);

export async function nodeNameTaken(q: StoreTx, name: string): Promise<boolean> {
  return (await q.one(sql`select 1 from inventory.nodes where name = ${name}`)) !== undefined;
}

export interface NodeInsert {
  name: string;
  description: string;
  admin: boolean;
  system: boolean;
  alive: boolean;
  available: boolean;
  bootenv: string;
  deploymentId: number;
  hint: Record<string, unknown>;
  discovery: Record<string, unknown>;
  sshHostKey: string | null;
  credentialHash: string;
}

export async function insertNode(q: StoreTx, n: NodeInsert): Promise<number> {
  const row = await q.one<{ id: number }>(sql`
    insert into inventory.nodes (name, description, admin, system, alive, available, bootenv, deployment_id, hint, discovery,
                                 ssh_host_key, credential_hash)
    values (${n.name}, ${n.description}, ${n.admin}, ${n.system}, ${n.alive}, ${n.available},
            ${n.bootenv}, ${n.deploymentId}, ${JSON.stringify(n.hint)}::jsonb, ${JSON.stringify(n.discovery)}::jsonb,
            ${n.sshHostKey}, ${n.credentialHash})
    returning id`);
  return row!.id;
}

/** What an update compares against, the row locked. */
export interface NodeCurrent {
  name: string;
  alive: boolean;
  available: boolean;
  bootenv: string;
  deploymentId: number;
  sshHostKey: string | null;
  description: string;
  version: number;
}

export async function lockNode(q: StoreTx, id: number): Promise<NodeCurrent | undefined> {
  return q.one<NodeCurrent>(sql`
    select name, alive, available, bootenv, deployment_id as "deploymentId", ssh_host_key as "sshHostKey", description, version
    from inventory.nodes where id = ${id} for update`);
}

/** The columns an update sets; `hint` and `discovery` are merged into what is stored. */
export interface NodeFields {
  name?: string;
  description?: string;
  alive?: boolean;
  available?: boolean;
  bootenv?: string;
  sshHostKey?: string | null;
  deploymentId?: number;
  hint?: Record<string, unknown>;
  discovery?: Record<string, unknown>;
  aliveReason?: string;
}

/** Sets the given fields, version up; nothing when none is given. */
export async function updateNodeFields(q: StoreTx, id: number, f: NodeFields): Promise<void> {
  const set: SQL[] = [];
  const col = (column: string, value: unknown) => {
    if (value !== undefined) set.push(sql`${sql.raw(column)} = ${value}`);
  };
  col('name', f.name);
  col('description', f.description);
  col('alive', f.alive);
  col('available', f.available);
  col('bootenv', f.bootenv);
  col('ssh_host_key', f.sshHostKey);
  col('deployment_id', f.deploymentId);
  if (f.hint !== undefined) set.push(sql`hint = hint || ${JSON.stringify(f.hint)}::jsonb`);
  if (f.discovery !== undefined)
    set.push(sql`discovery = discovery || ${JSON.stringify(f.discovery)}::jsonb`);
  col('alive_reason', f.aliveReason);
  if (set.length === 0) return;
  await q.rows(
    sql`update inventory.nodes set ${sql.join(set, sql`, `)}, version = version + 1, updated_at = now() where id = ${id}`,
  );
}

export async function nodeDeployment(q: StoreTx, id: number): Promise<number | undefined> {
  return (
    await q.one<{ deploymentId: number }>(
      sql`select deployment_id as "deploymentId" from inventory.nodes where id = ${id}`,
    )
  )?.deploymentId;
}

export const nodeKind = (q: StoreTx, id: number) =>
  q.one<{ deploymentId: number; admin: boolean; system: boolean }>(
    sql`select deployment_id as "deploymentId", admin, system from inventory.nodes where id = ${id}`,
  );

export async function isAdminNode(q: StoreTx, id: number): Promise<boolean> {
  return (await q.one(sql`select 1 from inventory.nodes where id = ${id} and admin`)) !== undefined;
}

export async function countAdminNodes(q: StoreTx): Promise<number> {
  return (
    (await q.one<{ n: number }>(sql`select count(*)::int as n from inventory.nodes where admin`))?.n ?? 0
  );
}

export async function anySystemNode(q: StoreTx): Promise<number | undefined> {
  return (await q.one<{ id: number }>(sql`select id from inventory.nodes where system order by id limit 1`))
    ?.id;
}

/** The deployment's first system (phantom) node. */
export async function phantomOf(q: StoreTx, deploymentId: number): Promise<number | undefined> {
  return (
    await q.one<{ id: number }>(
      sql`select id from inventory.nodes where system and deployment_id = ${deploymentId} order by id limit 1`,
    )
  )?.id;
}

export const phantomsOf = (q: StoreTx, deploymentId: number) =>
  q.rows<{ id: number }>(
    sql`select id from inventory.nodes where deployment_id = ${deploymentId} and system`,
  );

/** Moves a deployment's nodes to another; answers the moved ids. */
export const moveNodesOfDeployment = (q: StoreTx, from: number, to: number | null) =>
  q.rows<{ id: number }>(sql`
    update inventory.nodes set deployment_id = ${to}, version = version + 1, updated_at = now()
    where deployment_id = ${from} returning id`);

export async function deleteNodeRow(q: StoreTx, id: number): Promise<void> {
  await q.rows(sql`delete from inventory.nodes where id = ${id}`);
}

export async function setCredentialHash(q: StoreTx, id: number, hash: string): Promise<void> {
  await q.rows(sql`update inventory.nodes set credential_hash = ${hash} where id = ${id}`);
}

export async function credentialHash(q: StoreTx, id: number): Promise<string | null | undefined> {
  return (
    await q.one<{ h: string | null }>(sql`select credential_hash as h from inventory.nodes where id = ${id}`)
  )?.h;
}

export const nodeData = <T>(q: StoreTx, id: number) =>
  q.one<{ hint: T; discovery: T }>(sql`select hint, discovery from inventory.nodes where id = ${id}`);

export const lockNodeHint = <T>(q: StoreTx, id: number) =>
  q.one<{ hint: T }>(sql`select hint from inventory.nodes where id = ${id} for update`);

/** Replaces the hint (a JSON text), version up. */
export async function setNodeHint(q: StoreTx, id: number, json: string): Promise<void> {
  await q.rows(
    sql`update inventory.nodes set hint = ${json}::jsonb, version = version + 1
          where id = ${id}`,
  );
}

/** Merges `hints` into the hint, version up. */
export async function mergeNodeHint(q: StoreTx, id: number, hints: Record<string, string>): Promise<void> {
  await q.rows(
    sql`update inventory.nodes set hint = hint || ${JSON.stringify(hints)}::jsonb, version = version + 1 where id = ${id}`,
  );
}

/** The first admin node and its hint, locked. */
export const lockFirstAdminHint = <T>(q: StoreTx) =>
  q.one<{ id: number; hint: T }>(
    sql`select id, hint from inventory.nodes where admin order by id limit 1 for update`,
  );

export async function setHostKeyIfUnset(q: StoreTx, id: number, hostKey: string): Promise<void> {
  await q.rows(
    sql`update inventory.nodes set ssh_host_key = ${hostKey} where id = ${id} and ssh_host_key is null`,
  );
}

/** The first admin node with the owners of its service roles and how many of its noderoles are proposed. */
export const adminNodeServiceState = (q: StoreTx) =>
  q.one<{ id: number; owners: string[] | null; proposed: number }>(sql`
        select n.id,
          (select array_agg(distinct r.owner) from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
            where nr.node_id = n.id and r.jig = 'service' and r.owner is not null) as owners,
          (select count(*)::int from inventory.noderoles nr where nr.node_id = n.id and nr.state = 'proposed') as proposed
        from inventory.nodes n where n.admin order by n.id limit 1`);

export async function anySystemNodeExists(q: StoreTx): Promise<boolean> {
  return (await q.one(sql`select 1 from inventory.nodes where system`)) !== undefined;
}

/** A node's summary columns (`NodeSummary`), over `inventory.nodes n join inventory.deployments d`. */
const summaryCols = sql`n.id, n.name, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
             d.name as deployment, n.ssh_host_key as "sshHostKey",
             coalesce((select array_agg(distinct upper(m)) from (
                 select jsonb_array_elements_text(coalesce(n.hint->'admin_macs', '[]'::jsonb)) as m
                 union select jsonb_array_elements_text(coalesce(n.discovery->'macs', '[]'::jsonb))) x), '{}') as macs,
             coalesce((select array_agg(r.name order by r.name) from inventory.noderoles nr
                 join inventory.roles r on r.id = nr.role_id where nr.node_id = n.id), '{}') as roles,
             coalesce((select jsonb_object_agg(h.key, h.value) from jsonb_each_text(
                 case when jsonb_typeof(n.hint) = 'object' then n.hint else '{}'::jsonb end) h
               where h.key ~ '-v[46]addr$'), '{}'::jsonb) as "addressHints"`;

/** The node as events carry it, as it is now inside this transaction. */
export async function findNodeSummary(q: StoreTx, id: number): Promise<NodeSummary | undefined> {
  return q.one<NodeSummary>(sql`
      select ${summaryCols}
      from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id where n.id = ${id}`);
}

/**
 * Node summaries in id order, in one statement: every node, or those with id `node` or one of `macs`
 * (any case) among their hint's admin MACs or discovered MACs, when either is given.
 */
export async function nodeSummaries(
  q: StoreTx,
  match: { node?: number | undefined; macs?: string[] | undefined } = {},
): Promise<NodeSummary[]> {
  if (match.node === undefined && match.macs === undefined)
    return q.rows<NodeSummary>(sql`
      select ${summaryCols}
      from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id order by n.id`);
  const macs = (match.macs ?? []).map((m) => m.toUpperCase());
  return q.rows<NodeSummary>(sql`
      select ${summaryCols}
      from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id
      where n.id = ${match.node ?? 0} or exists (
        select 1 from (
          select jsonb_array_elements_text(coalesce(n.hint->'admin_macs', '[]'::jsonb)) as m
          union select jsonb_array_elements_text(coalesce(n.discovery->'macs', '[]'::jsonb))) x
        where upper(x.m) = any(${sql.param(macs)}::text[]))
      order by n.id`);
}
