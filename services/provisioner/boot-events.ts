import type { Bus } from '../../shared/bus/bus.js';
import { provisionerMessages, wireType } from '../../shared/catalogue/index.js';
import type { Database } from '../../shared/db/database.js';
import { enqueueOutbox } from '../../shared/db/outbox.js';
import { queryText } from '../../shared/db/prepared.js';
import type { Logger } from '../../shared/log.js';
import { normaliseMac } from '../../shared/mac.js';
import { outbox } from './db/schema.js';
import type { NodeRegistry } from './registry.js';

/** One fetch from the boot root or a boot script, as the flight recorder keeps it. */
export interface BootFetch {
  mac: string | null;
  nodeId: number | null;
  client: string;
  file: string;
  bootenv: string | null;
  bytes: number;
  ok: boolean;
  error: string | null;
  transport?: 'http' | 'tftp';
}

/**
 * What every machine fetched: each fetch a row of provisioner.boot_events and a `boot.fetched` event in
 * the same transaction (outbox); listed per node (with what its MACs fetched before it was registered)
 * or per MAC, newest first.
 */
export function bootEventLog(deps: { database: Database; bus: Bus; log: Logger; registry: NodeRegistry }) {
  const { database, bus, log, registry } = deps;
  return {
    record: (e: BootFetch) => {
      void database.db
        .transaction(async (tx) => {
          const [row] = await queryText<{ id: number; at: string }>(
            tx,
            `insert into provisioner.boot_events (node_id, mac, client, transport, file, bootenv, bytes, ok, error)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id, at`,
            [e.nodeId, e.mac, e.client, e.transport ?? 'http', e.file, e.bootenv, e.bytes, e.ok, e.error],
          );
          const boot = {
            ...e,
            transport: e.transport ?? 'http',
            id: row!.id,
            at: new Date(row!.at).toISOString(),
          };
          const def = provisionerMessages.bootFetched;
          await enqueueOutbox(
            tx,
            outbox,
            [{ subject: def.subject, envelope: bus.envelope(wireType(def), { boot }) }],
            'provisioner_outbox',
          );
        })
        .catch((err: unknown) => log.warn({ err, file: e.file }, 'boot event not recorded'));
    },
    list: async (q: {
      nodeId?: number | undefined;
      mac?: string | undefined;
      before?: number | undefined;
      limit: number;
    }) => {
      const rows = await queryText<{
        id: string;
        nodeId: number | null;
        mac: string | null;
        client: string;
        transport: 'http' | 'tftp';
        file: string;
        bootenv: string | null;
        bytes: string;
        ok: boolean;
        error: string | null;
        at: string;
      }>(
        database.db,
        `select id, node_id as "nodeId", mac, client, transport, file, bootenv, bytes, ok, error, at
           from provisioner.boot_events
           where ($1::int is null or node_id = $1 or mac = any($5::text[])) and ($2::text is null or mac = $2)
             and ($3::bigint is null or id < $3)
           order by id desc limit $4`,
        // A node's timeline also holds what its MACs fetched before it was registered.
        [
          q.nodeId ?? null,
          q.mac ? normaliseMac(q.mac) : null,
          q.before ?? null,
          q.limit,
          (q.nodeId === undefined ? [] : (registry.byId(q.nodeId)?.macs ?? []))
            .map(normaliseMac)
            .filter((m): m is string => m !== null),
        ],
      );
      return {
        events: rows.map((r) => ({
          ...r,
          id: Number(r.id),
          bytes: Number(r.bytes),
          at: new Date(r.at).toISOString(),
        })),
      };
    },
  };
}
