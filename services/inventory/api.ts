import type { Bus } from '../../shared/bus/bus.js';
import type { Lineage } from '../../shared/bus/envelope.js';
import {
  type InventoryOp,
  type InventoryOpAnswer,
  type InventoryOpArgs,
  inventoryEvents,
  inventoryOpRpcs,
  isInventoryOp,
  type JsonObject,
  type NoderoleState,
} from '../../shared/catalogue/index.js';
import { ConflictError, NotFoundError } from '../../shared/errors.js';
import { getAttrib, listAttribs, setAttrib } from './engine/attribs.js';
import { bind } from './engine/binding.js';
import { deepMerge } from './engine/data.js';
import {
  commitDeployment,
  commitDeploymentRole,
  createDeployment,
  deleteDeployment,
  deploymentGraph,
  proposeDeployment,
  proposeDeploymentRole,
} from './engine/deployments.js';
import {
  commitNode,
  createNode,
  deleteNode,
  deploymentId,
  nodeId,
  proposeNode,
  rotateCredential,
  updateNode,
} from './engine/nodes.js';
import { previewCommit } from './engine/preview.js';
import {
  getDeployment,
  getNodeDetail,
  getNoderole,
  listNoderoles,
  listNodes,
  listRoles,
  noderoleFor,
} from './engine/queries.js';
import { nodeState } from './engine/states.js';
import { commit, propose, todo } from './engine/transitions.js';
import type { GraphTx } from './engine/tx.js';
import {
  deploymentRoleDetail,
  deploymentRoleProposed,
  deploymentRoleRows,
  deploymentRows,
  setDeploymentRoleProposed,
  upsertDeploymentRole,
} from './store/deployments.js';
import { descendants } from './store/graph.js';
import {
  deleteNoderoleRow,
  mergeProposedDataWhileProposed,
  noderoleVersion,
  setNoderoleProposedData,
} from './store/noderoles.js';
import { roleIdNamed } from './store/roles.js';
import { noderoleOfNamedRole } from './store/views.js';

/** One operation of the operator API: its checked request in, its answer out (`inventoryOpRpcs`). */
type Handler<K extends InventoryOp> = (g: GraphTx, a: InventoryOpArgs<K>) => Promise<InventoryOpAnswer<K>>;

async function nr(g: GraphTx, id: number) {
  const row = await g.noderole(id);
  if (!row) throw new NotFoundError(`no noderole ${id}`, { field: 'noderole' });
  return row;
}

/** A node as the API shows it: the state that wins among its noderoles' (`nodeState`). */
const withState = <N extends { states: NoderoleState[] }>(n: N) => ({ ...n, state: nodeState(n.states) });

/** Deletion rule of reference §1.11: leaves, or subtrees on one node, or subtrees never run. */
async function deleteNoderole(g: GraphTx, id: number) {
  const self = await nr(g, id);
  const desc = await descendants(g, id);
  const sameNode = desc.every((d) => d.nodeId === self.nodeId);
  const neverRun = desc.every((d) => d.state === 'proposed' && d.runCount === 0);
  if (desc.length && !sameNode && !neverRun) {
    throw new ConflictError(`noderole ${id} has children on other nodes that have run`, {
      rule: 'noderole deletion',
    });
  }
  for (const d of [...desc.sort((a, b) => b.cohort - a.cohort), { id }]) {
    const s = await g.noderoleSummary(d.id);
    await deleteNoderoleRow(g, d.id);
    g.emit(inventoryEvents.noderoleDeleted, { noderole: s });
  }
  await g.nodeChanged(self.nodeId, ['roles'], `noderole ${id} deleted`);
  return { deleted: desc.length + 1 };
}

const handlers: { [K in InventoryOp]: Handler<K> } = {
  'node.create': async (g, { roles = [], ...a }) => {
    const { id, credential } = await createNode(g, a);
    const { deploymentId } = await getNodeDetail(g, id);
    for (const role of roles) await bind(g, role, id, deploymentId);
    return { ...withState(await getNodeDetail(g, id)), credential };
  },
  'node.update': async (g, a) => {
    const id = await nodeId(g, a.node);
    const { node: _n, ...rest } = a;
    await updateNode(g, id, rest, 'operator update');
    return withState(await getNodeDetail(g, id));
  },
  'node.rotate_credential': async (g, a) => {
    const id = await nodeId(g, a.node);
    return { node: id, credential: await rotateCredential(g, id) };
  },
  'node.get': async (g, a) => withState(await getNodeDetail(g, await nodeId(g, a.node))),
  'node.list': async (g, a) => {
    const page = await listNodes(g, {
      limit: a.limit,
      ...(a.cursor !== undefined ? { after: Number(a.cursor) } : {}),
    });
    return { nodes: page.rows.map(withState), next: page.next };
  },
  'node.delete': async (g, a) => {
    await deleteNode(g, await nodeId(g, a.node));
    return { deleted: true };
  },
  'node.propose': async (g, a) => {
    const id = await nodeId(g, a.node);
    await proposeNode(g, id);
    return withState(await getNodeDetail(g, id));
  },
  'node.commit': async (g, a) => {
    const id = await nodeId(g, a.node);
    await commitNode(g, id);
    return withState(await getNodeDetail(g, id));
  },
  'noderole.list': async (g, a) => {
    const [cohort, id] = (a.cursor ?? '').split('.').map(Number);
    const page = await listNoderoles(
      g,
      {
        ...(a.node !== undefined ? { nodeId: await nodeId(g, a.node) } : {}),
        ...(a.deployment !== undefined ? { deploymentId: await deploymentId(g, a.deployment) } : {}),
        ...(a.role !== undefined ? { role: a.role } : {}),
        ...(a.state !== undefined ? { state: a.state } : {}),
      },
      { limit: a.limit, ...(a.cursor !== undefined ? { after: { cohort: cohort!, id: id! } } : {}) },
    );
    return { noderoles: page.rows, next: page.next };
  },
  'noderole.get': async (g, a) => {
    if (a.noderole !== undefined) return getNoderole(g, a.noderole);
    if (a.node === undefined || a.role === undefined)
      throw new NotFoundError('give a noderole id, or a node and a role', { field: 'noderole' });
    return getNoderole(g, await noderoleFor(g, await nodeId(g, a.node), a.role));
  },
  'noderole.create': async (g, a) => {
    const node = await nodeId(g, a.node);
    const dep =
      a.deployment !== undefined
        ? await deploymentId(g, a.deployment)
        : (await getNodeDetail(g, node)).deploymentId;
    const exists = await noderoleOfNamedRole(g, node, a.role);
    if (exists !== undefined)
      throw new ConflictError(`node ${node} already has role ${a.role} (noderole ${exists})`, {
        rule: 'one noderole per role and node',
      });
    const id = await bind(g, a.role, node, dep);
    if (a.data) {
      await mergeProposedDataWhileProposed(g, id, JSON.stringify(a.data));
    }
    return getNoderole(g, id);
  },
  'noderole.update': async (g, a) => {
    const row = await nr(g, a.noderole);
    const version = await noderoleVersion(g, a.noderole);
    if (a.version !== undefined && a.version !== version) {
      throw new ConflictError(
        `noderole ${a.noderole} is at version ${version}, not ${a.version}; re-read it and try again`,
        {
          rule: 'stale version',
        },
      );
    }
    if (row.state !== 'proposed')
      throw new ConflictError(`noderole ${a.noderole} is ${row.state}; propose it before editing its data`, {
        rule: 'data is editable while proposed',
      });
    await setNoderoleProposedData(g, a.noderole, JSON.stringify(a.data));
    return getNoderole(g, a.noderole);
  },
  'noderole.retry': async (g, a) => {
    await todo(g, await nr(g, a.noderole), 'operator retry');
    return getNoderole(g, a.noderole);
  },
  'noderole.propose': async (g, a) => {
    await propose(g, await nr(g, a.noderole), 'operator propose');
    return getNoderole(g, a.noderole);
  },
  'noderole.commit': async (g, a) => {
    await commit(g, await nr(g, a.noderole), 'operator commit');
    return getNoderole(g, a.noderole);
  },
  'noderole.delete': async (g, a) => deleteNoderole(g, a.noderole),
  'deployment.create': async (g, a) => createDeployment(g, a),
  'deployment.list': async (g) => ({ deployments: await deploymentRows(g) }),
  'deployment.get': async (g, a) => getDeployment(g, await deploymentId(g, a.deployment)),
  'deployment.propose': async (g, a) => proposeDeployment(g, await deploymentId(g, a.deployment)),
  'deployment.commit': async (g, a) => commitDeployment(g, await deploymentId(g, a.deployment)),
  'deployment.delete': async (g, a) => {
    await deleteDeployment(g, await deploymentId(g, a.deployment));
    return { deleted: true };
  },
  'deployment.graph': async (g, a) => deploymentGraph(g, await deploymentId(g, a.deployment)),
  'deployment.preview': async (g, a) => previewCommit(g, await deploymentId(g, a.deployment)),
  'deployment_role.list': async (g, a) => ({
    deployment_roles: await deploymentRoleRows(
      g,
      a.deployment !== undefined ? await deploymentId(g, a.deployment) : undefined,
    ),
  }),
  'deployment_role.create': async (g, a) => {
    const dep = await deploymentId(g, a.deployment);
    const role = await roleIdNamed(g, a.role);
    if (role === undefined) throw new NotFoundError(`no role ${a.role}`, { field: 'role' });
    const id = await upsertDeploymentRole(g, dep, role, a.data ?? {});
    return { id, deploymentId: dep, role: a.role };
  },
  'deployment_role.get': async (g, a) => {
    const r = await deploymentRoleDetail(g, a.id);
    if (!r) throw new NotFoundError(`no deployment role ${a.id}`, { field: 'deployment_role' });
    return r;
  },
  'deployment_role.update': async (g, a) => {
    const p = await deploymentRoleProposed<JsonObject>(g, a.id, false);
    if (p === undefined) throw new NotFoundError(`no deployment role ${a.id}`, { field: 'deployment_role' });
    await setDeploymentRoleProposed(g, a.id, JSON.stringify(deepMerge(p, a.data)), false);
    return handlers['deployment_role.get'](g, { id: a.id });
  },
  'deployment_role.commit': async (g, a) => {
    await commitDeploymentRole(g, a.id);
    return handlers['deployment_role.get'](g, { id: a.id });
  },
  'deployment_role.propose': async (g, a) => {
    await proposeDeploymentRole(g, a.id);
    return handlers['deployment_role.get'](g, { id: a.id });
  },
  'role.list': async (g) => ({ roles: await listRoles(g) }),
  'role.get': async (g, a) => {
    const r = (await listRoles(g)).find((x) => x.name === a.role || x.id === Number(a.role));
    if (!r) throw new NotFoundError(`no role ${a.role}`, { field: 'role' });
    return r;
  },
  'attrib.list': async (g) => ({ attribs: await listAttribs(g) }),
  'attrib.get': async (g, a) =>
    getAttrib(g, a.target, a.target === 'node' ? await nodeId(g, a.id) : Number(a.id), a.attrib),
  'attrib.set': async (g, a) =>
    setAttrib(g, a.target, a.target === 'node' ? await nodeId(g, a.id) : Number(a.id), a.attrib, a.value),
};

/** Runs a transaction: its lineage, and whether it only reads. */
export type TxRunner = <T>(fn: (g: GraphTx) => Promise<T>, lineage: Lineage, readOnly: boolean) => Promise<T>;

/**
 * Answers every operation of the operator API, each in one transaction: read-only for an operation the
 * catalogue marks `readOnly`, carrying the request's lineage to the events it causes.
 */
export function serveOperations(bus: Bus, tx: TxRunner): void {
  const serve = <K extends InventoryOp>(op: K) => {
    const def = inventoryOpRpcs[op];
    const handler: Handler<K> = handlers[op];
    bus.serve(def, (req, env) =>
      tx((g) => handler(g, req), { correlationId: env.correlationId, causationId: env.id }, def.readOnly),
    );
  };
  for (const op of Object.keys(inventoryOpRpcs).filter(isInventoryOp)) serve(op);
}
