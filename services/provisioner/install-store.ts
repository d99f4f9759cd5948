import type { Database } from '../../shared/db/database.js';
import { queryText } from '../../shared/db/prepared.js';

export interface InstallRequest {
  nodeId: number;
  bootenv: string;
  disk: string;
  /** When the run rebooted the node into the installer (null until then). */
  rebootedAt: string | null;
}

/** The installs requested, by node: `provisioner.installs`, with a copy in memory for boot scripts. */
export class InstallStore {
  readonly #byNode = new Map<number, InstallRequest>();

  constructor(private readonly database: Database) {}

  async load(): Promise<void> {
    const rows = await queryText<InstallRequest>(
      this.database.db,
      `select node_id as "nodeId", bootenv, disk,
         to_char(rebooted_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as "rebootedAt"
       from provisioner.installs`,
      [],
    );
    for (const r of rows) this.#byNode.set(r.nodeId, r);
  }

  get(nodeId: number): InstallRequest | undefined {
    return this.#byNode.get(nodeId);
  }

  /** Records a new request (disk and bootenv), clearing any earlier reboot. */
  async remember(r: InstallRequest): Promise<void> {
    await queryText(
      this.database.db,
      `insert into provisioner.installs (node_id, bootenv, disk) values ($1, $2, $3)
       on conflict (node_id) do update set bootenv = excluded.bootenv, disk = excluded.disk,
         requested_at = now(), rebooted_at = null`,
      [r.nodeId, r.bootenv, r.disk],
    );
    this.#byNode.set(r.nodeId, { ...r, rebootedAt: null });
  }

  async markRebooted(nodeId: number, at: string): Promise<void> {
    await queryText(this.database.db, 'update provisioner.installs set rebooted_at = $2 where node_id = $1', [
      nodeId,
      at,
    ]);
    const r = this.#byNode.get(nodeId);
    if (r) r.rebootedAt = at;
  }

  async forget(nodeId: number): Promise<void> {
    this.#byNode.delete(nodeId);
    await queryText(this.database.db, 'delete from provisioner.installs where node_id = $1', [nodeId]);
  }
}
