import { type SQL, sql } from 'drizzle-orm';
import type { z } from 'zod';
import { parsePayload } from '../../../shared/bus/bus.js';
import type { Envelope, Lineage } from '../../../shared/bus/envelope.js';
import {
  type EventDef,
  inventoryEvents,
  type NoderoleState,
  type NoderoleSummary,
  type NodeSummary,
  wireType,
} from '../../../shared/catalogue/index.js';
import type { Db } from '../../../shared/db/database.js';
import { enqueueOutbox, type OutboxEntry } from '../../../shared/db/outbox.js';
import { queryRows } from '../../../shared/db/prepared.js';
import type { Logger } from '../../../shared/log.js';
import { outbox } from '../db/schema.js';

export type Row = Record<string, unknown>;

type DrizzleTx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Builds envelopes for the outbox (the bus builds them the same way for direct publishes). */
export type EnvelopeMaker = <T>(type: string, data: T, lineage?: Lineage) => Envelope<T>;

export interface NoderoleRow {
  id: number;
  nodeId: number;
  roleId: number;
  deploymentId: number;
  state: NoderoleState;
  cohort: number;
  runCount: number;
  available: boolean;
  runToken: string | null;
}

/**
 * `col` is one of `ids`. One id is written `col = $1`: PostgreSQL plans `= any($1)` afresh on every call
 * (its generic plan guesses ten elements, so the one-element custom plan always looks cheaper), which
 * the engine's one-noderole paths cannot afford; a batch plans once for many rows.
 */
export const idIn = (col: SQL, ids: number[]) =>
  ids.length === 1 ? sql`${col} = ${ids[0]}` : sql`${col} = any(${sql.param(ids)}::int[])`;

/** The columns of a NoderoleRow, read from the noderoles table under alias `t`. */
export const noderoleCols = (t: SQL) => sql`${t}.id, ${t}.node_id as "nodeId", ${t}.role_id as "roleId",
  ${t}.deployment_id as "deploymentId", ${t}.state, ${t}.cohort, ${t}.run_count as "runCount", ${t}.available,
  ${t}.run_token as "runToken"`;

/**
 * One inventory transaction: queries, and the events it will publish through the outbox when it commits.
 * Queries run as prepared statements; see `inGraphTx` for locking and retries.
 */
export class GraphTx {
  private readonly pending: OutboxEntry[] = [];
  constructor(
    readonly tx: DrizzleTx,
    private readonly envelope: EnvelopeMaker,
    readonly log: Logger,
    readonly lineage: Lineage,
  ) {}

  /** Runs `query` as a named prepared statement on this transaction's connection. */
  async rows<T = Row>(query: SQL): Promise<T[]> {
    return queryRows<T>(this.tx, query);
  }
  async one<T = Row>(query: SQL): Promise<T | undefined> {
    return (await this.rows<T>(query))[0];
  }

  emit<S extends z.ZodType>(def: EventDef<S>, data: z.input<S>): void {
    const payload = parsePayload(def.schema, data, `${def.type} event`);
    this.pending.push({
      subject: def.subject,
      envelope: this.envelope(wireType(def), payload, this.lineage),
    });
  }

  async flush(): Promise<void> {
    // No NOTIFY: the inventory service kicks its relay after every transaction (service.ts).
    await enqueueOutbox(this.tx, outbox, this.pending.splice(0));
  }

  async noderole(id: number, lock = true): Promise<NoderoleRow | undefined> {
    return this.one<NoderoleRow>(sql`
      select ${noderoleCols(sql`nr`)} from inventory.noderoles nr where nr.id = ${id} ${lock ? sql`for update` : sql``}`);
  }

  async noderoleSummary(id: number): Promise<NoderoleSummary> {
    const r = await this.one<NoderoleSummary>(sql`
      select nr.id, nr.role_id as "roleId", r.name as role, nr.node_id as "nodeId", n.name as node,
             nr.deployment_id as "deploymentId", d.name as deployment, nr.state, nr.run_count as "runCount", nr.cohort
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
      join inventory.nodes n on n.id = nr.node_id join inventory.deployments d on d.id = nr.deployment_id
      where nr.id = ${id}`);
    if (!r) throw new Error(`noderole ${id} vanished inside its transaction`);
    return r;
  }

  async nodeSummary(id: number): Promise<NodeSummary | undefined> {
    return this.one<NodeSummary>(sql`
      select n.id, n.name, n.admin, n.system, n.alive, n.available, n.bootenv, n.deployment_id as "deploymentId",
             d.name as deployment, n.ssh_host_key as "sshHostKey",
             coalesce((select array_agg(distinct upper(m)) from (
                 select jsonb_array_elements_text(coalesce(n.hint->'admin_macs', '[]'::jsonb)) as m
                 union select jsonb_array_elements_text(coalesce(n.discovery->'macs', '[]'::jsonb))) x), '{}') as macs,
             coalesce((select array_agg(r.name order by r.name) from inventory.noderoles nr
                 join inventory.roles r on r.id = nr.role_id where nr.node_id = n.id), '{}') as roles,
             coalesce((select jsonb_object_agg(h.key, h.value) from jsonb_each_text(
                 case when jsonb_typeof(n.hint) = 'object' then n.hint else '{}'::jsonb end) h
               where h.key ~ '-v[46]addr$'), '{}'::jsonb) as "addressHints"
      from inventory.nodes n join inventory.deployments d on d.id = n.deployment_id where n.id = ${id}`);
  }

  /** Emits `node.changed` with the node as it is now inside this transaction. */
  async nodeChanged(nodeId: number, changed: string[], reason = ''): Promise<void> {
    const node = await this.nodeSummary(nodeId);
    if (node)
      this.emit(inventoryEvents.nodeChanged, {
        node: { ...node, macs: [...node.macs].sort() },
        changed,
        reason,
      });
  }
}

/**
 * Runs `fn` in one transaction. Graph changes lock the rows they touch (noderoles FOR UPDATE, parents FOR
 * SHARE when checking them, the node row when starting a run), so work on different nodes goes on in
 * parallel; a deadlock, a serialization failure or a lost insert race rolls back and runs `fn` again.
 */
export async function inGraphTx<T>(
  db: Db,
  deps: { envelope: EnvelopeMaker; log: Logger },
  lineage: Lineage,
  fn: (g: GraphTx) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(async (tx) => {
        // Queries say so, and PostgreSQL holds them to it.
        if (opts.readOnly) await tx.execute(sql`set transaction read only`);
        const g = new GraphTx(tx, deps.envelope, deps.log, lineage);
        const out = await fn(g);
        await g.flush();
        return out;
      });
    } catch (err) {
      const code =
        (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if ((code === '40001' || code === '40P01' || code === '23505') && attempt < 8) {
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
        continue;
      }
      throw err;
    }
  }
}
