import { sql } from 'drizzle-orm';
import { atPath, deepMerge, type Json } from './data.js';
import type { GraphTx } from './tx.js';

/**
 * What a run sees (reference §1.12, closest ancestor wins — DESIGN §4 #4): attrib defaults, then every
 * ancestor's merged data from the most distant to the closest, then this noderole's own data, then the
 * node's hints and quirks. Frozen into the run when it starts.
 */
export async function stageRunData(g: GraphTx, noderoleId: number): Promise<Json> {
  const self = await g.one<{
    roleId: number;
    nodeId: number;
    deploymentId: number;
    template: Json;
    wantsAttribs: string[];
    wall: Json;
    sysdata: Json;
    committed: Json;
    drWall: Json | null;
    drCommitted: Json | null;
  }>(sql`
    select nr.role_id as "roleId", nr.node_id as "nodeId", nr.deployment_id as "deploymentId", r.template,
           r.wants_attribs as "wantsAttribs", nr.wall, nr.sysdata, nr.committed_data as committed,
           dr.wall as "drWall", dr.committed_data as "drCommitted"
    from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id
    left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
    where nr.id = ${noderoleId}`);
  if (!self) return {};
  const defaults = await g.rows<{ map: string; value: unknown }>(sql`
    select map, default_value as value from inventory.attribs
    where default_value is not null and (role_id = ${self.roleId} or name = any(${`{${self.wantsAttribs.join(',')}}`}::text[])
      or role_id in (select a.role_id from inventory.noderole_edges e join inventory.noderoles a on a.id = e.parent_id where e.child_id = ${noderoleId}))`);
  const ancestors = await g.rows<{ data: Json }>(sql`
    with recursive a(id, depth) as (
      select parent_id, 1 from inventory.noderole_edges where child_id = ${noderoleId}
      union select e.parent_id, a.depth + 1 from inventory.noderole_edges e join a on e.child_id = a.id where a.depth < 64)
    select jsonb_build_object('dw', coalesce(dr.wall, '{}'), 'dc', coalesce(dr.committed_data, '{}'), 'w', nr.wall, 's', nr.sysdata, 'c', nr.committed_data) as data
    from (select id, max(depth) as depth from a group by id) x join inventory.noderoles nr on nr.id = x.id
    left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
    order by x.depth desc, nr.cohort, nr.id`);
  const node = await g.one<{
    id: number;
    name: string;
    admin: boolean;
    hint: Json;
    quirks: string[];
    bootenv: string;
  }>(sql`select id, name, admin, hint, quirks, bootenv from inventory.nodes where id = ${self.nodeId}`);
  const blobs: Json[] = defaults.map((d) => atPath(d.map, d.value));
  for (const a of ancestors) {
    const d = a.data as { dw: Json; dc: Json; w: Json; s: Json; c: Json };
    blobs.push(deepMerge(d.dw, d.dc, d.w, d.s, d.c));
  }
  blobs.push(
    self.template,
    self.drWall ?? {},
    self.drCommitted ?? {},
    self.wall,
    self.sysdata,
    self.committed,
  );
  const reservations = (node?.hint as { reservations?: unknown })?.reservations;
  return deepMerge(...blobs, {
    crowbar: { node: { id: node?.id, name: node?.name, admin: node?.admin, bootenv: node?.bootenv } },
    hints: node?.hint ?? {},
    quirks: node?.quirks ?? [],
    ...(reservations ? { crowbar_wall: { reservations } } : {}),
  });
}
