import type { Json } from '../../../shared/catalogue/index.js';
import { stagedRows } from '../store/runs.js';
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
  // One round trip for all of `ids` (store/runs.ts).
  const staged = await stagedRows<Staged>(g, ids);
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
