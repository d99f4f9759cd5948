import { sql } from 'drizzle-orm';
import type { Json } from '../../../shared/catalogue/index.js';
import { atPath, deepMerge, getPath, type JsonObject } from './data.js';
import type { GraphTx } from './tx.js';

/** One noderole's staged rows: itself with its node, the attrib defaults it sees, its ancestors' data. */
interface Staged {
  self: {
    template: JsonObject;
    wall: JsonObject;
    sysdata: JsonObject;
    committed: JsonObject;
    drWall: JsonObject | null;
    drCommitted: JsonObject | null;
    node: {
      id: number;
      name: string;
      admin: boolean;
      hint: JsonObject;
      discovery: JsonObject;
      quirks: string[];
      bootenv: string;
    };
  };
  defaults: { map: string; value: Json }[];
  /** Maps of the node-level attribs the role wants (their values come from the node). */
  wanted: string[];
  ancestors: { dw: JsonObject; dc: JsonObject; w: JsonObject; s: JsonObject; c: JsonObject }[];
}

/**
 * What a run sees (reference §1.12, closest ancestor wins — DESIGN §4 #4): attrib defaults, then every
 * ancestor's merged data from the most distant to the closest, then this noderole's own data, then the
 * node's hints and quirks. Frozen into the run when it starts. Answers, per noderole of `ids` that exists,
 * its data.
 */
export async function stageRunData(g: GraphTx, ids: number[]): Promise<Map<number, JsonObject>> {
  // One round trip for all of `ids`: each noderole with its node, the attrib defaults it sees, and every
  // ancestor's data from the most distant to the closest. The `offset 0` subqueries stay per-row index
  // lookups: a graph that grew since the last ANALYZE would otherwise get hash joins over whole tables,
  // once per level.
  const staged = await g.rows<Staged & { root: number }>(sql`
    with recursive a(root, id, depth) as (
      select u.root, e.parent_id, 1 from unnest(${sql.param(ids)}::int[]) as u(root)
        cross join lateral (select parent_id from inventory.noderole_edges where child_id = u.root offset 0) e
      union select a.root, e.parent_id, a.depth + 1 from a
        cross join lateral (select parent_id from inventory.noderole_edges where child_id = a.id offset 0) e
        where a.depth < 64),
    self as (
      select nr.id as root, nr.role_id, r.wants_attribs,
             array(select (select p.role_id from inventory.noderoles p where p.id = e.parent_id)
                   from inventory.noderole_edges e where e.child_id = nr.id) as parent_roles,
             jsonb_build_object('template', r.template, 'wall', nr.wall, 'sysdata', nr.sysdata, 'committed', nr.committed_data,
               'drWall', dr.wall, 'drCommitted', dr.committed_data,
               'node', jsonb_build_object('id', n.id, 'name', n.name, 'admin', n.admin, 'hint', n.hint, 'discovery', case when cardinality(r.wants_attribs) > 0 then n.discovery else '{}'::jsonb end, 'quirks', to_jsonb(n.quirks), 'bootenv', n.bootenv)) as doc
      from inventory.noderoles nr join inventory.roles r on r.id = nr.role_id join inventory.nodes n on n.id = nr.node_id
      left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
      where nr.id = any(${sql.param(ids)}::int[]))
    select s.root, s.doc as self,
      (select coalesce(jsonb_agg(jsonb_build_object('map', at.map, 'value', at.default_value)), '[]'::jsonb)
         from inventory.attribs at
         where at.default_value is not null
           and (at.role_id = s.role_id or at.name = any(s.wants_attribs) or at.role_id = any(s.parent_roles))) as defaults,
      (select coalesce(jsonb_agg(at.map), '[]'::jsonb) from inventory.attribs at
         where at.role_id is null and at.name = any(s.wants_attribs)) as wanted,
      (select coalesce(jsonb_agg(d.doc order by x.depth desc, d.cohort, x.id), '[]'::jsonb)
         from (select id, max(depth) as depth from a where a.root = s.root group by id) x
         cross join lateral (
           select nr.cohort, jsonb_build_object('dw', coalesce(dr.wall, '{}'), 'dc', coalesce(dr.committed_data, '{}'),
                    'w', nr.wall, 's', nr.sysdata, 'c', nr.committed_data) as doc
           from inventory.noderoles nr
           left join inventory.deployment_roles dr on dr.role_id = nr.role_id and dr.deployment_id = nr.deployment_id
           where nr.id = x.id offset 0) d) as ancestors
    from self s`);
  return new Map(staged.map((row) => [row.root, merged(row)]));
}

function merged(staged: Staged): JsonObject {
  const self = staged.self;
  const node = self.node;
  const blobs: JsonObject[] = staged.defaults.map((d) => atPath(d.map, d.value));
  // Wanted node-level attribs: the node's value (discovery ⊕ hint) at the attrib's map (§1.12 step 1).
  const nodeData = deepMerge(node.discovery, node.hint);
  for (const map of staged.wanted) {
    const v = getPath(nodeData, map);
    if (v !== undefined) blobs.push(atPath(map, v));
  }
  for (const d of staged.ancestors) blobs.push(deepMerge(d.dw, d.dc, d.w, d.s, d.c));
  blobs.push(
    self.template,
    self.drWall ?? {},
    self.drCommitted ?? {},
    self.wall,
    self.sysdata,
    self.committed,
  );
  const reservations = node.hint?.reservations;
  return deepMerge(...blobs, {
    crowbar: { node: { id: node.id, name: node.name, admin: node.admin, bootenv: node.bootenv } },
    hints: node.hint ?? {},
    quirks: node.quirks ?? [],
    ...(reservations ? { crowbar_wall: { reservations } } : {}),
  });
}
