import { z } from 'zod';
import {
  alivenessMessages,
  annealerMessages,
  inventoryAnnealRpcs,
  inventoryOps,
  ipamRpcs,
  noderoleState,
  provisionerMessages,
} from '../../../shared/catalogue/index.js';
import {
  arrayOf,
  attribParams,
  body,
  bootEventQuery,
  categoryQuery,
  dataBody,
  ex,
  fromRpc,
  idOrName,
  inv,
  pageQuery,
  positive,
  q,
  type RouteDoc,
  type RouteDocs,
  valueBody,
} from './docs.js';

const nodes = 'nodes';
const noderoles = 'node_roles';
const deployments = 'deployments';
const droles = 'deployment_roles';
const noderoleQuery = {
  ...pageQuery,
  node: q(idOrName, 'only noderoles on this node (id or name)'),
  deployment: q(idOrName, 'only noderoles in this deployment (id or name)'),
  role: q(z.string(), 'only noderoles of this role'),
  state: q(noderoleState, 'only noderoles in this state'),
};

/** Inventory's routes: nodes, roles, noderoles, deployments, deployment roles, attribs, the anneal and its runs. */
export const inventoryRouteDocs: RouteDocs = {
  // nodes
  'GET /api/v2/nodes': { tag: nodes, summary: 'List nodes', query: pageQuery, response: inv('node.list') },
  'POST /api/v2/nodes': {
    tag: nodes,
    summary: 'Create a node',
    description: 'Answers the node with its credential (shown once).',
    body: body('node.create', { name: 'web1.lab.crowbar.test', alive: true, deployment: 'web' }),
    status: 201,
    response: inv('node.create'),
  },
  'GET /api/v2/nodes/:id': { tag: nodes, summary: 'Show a node', response: inv('node.get') },
  'PUT /api/v2/nodes/:id': {
    tag: nodes,
    summary: 'Update a node (move it with `deployment`)',
    body: ex(inventoryOps['node.update'].omit({ node: true }), {
      description: 'rack 4',
      deployment: 'web',
      version: 2,
    }),
    response: inv('node.update'),
  },
  'DELETE /api/v2/nodes/:id': { tag: nodes, summary: 'Delete a node', response: inv('node.delete') },
  'PUT /api/v2/nodes/:id/propose': {
    tag: nodes,
    summary: "Propose the node's noderoles",
    response: inv('node.propose'),
  },
  'PUT /api/v2/nodes/:id/commit': {
    tag: nodes,
    summary: "Commit the node's noderoles",
    response: inv('node.commit'),
  },
  'GET /api/v2/nodes/:id/node_roles': {
    tag: nodes,
    summary: "The node's noderoles",
    query: pageQuery,
    response: inv('noderole.list'),
  },
  'GET /api/v2/nodes/:id/node_roles/:role': {
    tag: nodes,
    summary: "The node's noderole of a role",
    params: { role: 'role name' },
    response: inv('noderole.get'),
  },
  'GET /api/v2/nodes/:id/attribs/:attrib': {
    tag: nodes,
    summary: 'Read an attrib of the node',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/nodes/:id/attribs/:attrib': {
    tag: nodes,
    summary: 'Write an attrib of the node',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },
  'GET /api/v2/nodes/:id/addresses': {
    tag: nodes,
    summary: "The node's addresses",
    query: { network: q(idOrName, 'only on this network'), ...categoryQuery },
    response: fromRpc(ipamRpcs.allocationFind),
  },
  'GET /api/v2/nodes/:id/boot_events': {
    tag: nodes,
    summary: 'What the node fetched to boot (newest first)',
    query: bootEventQuery,
    response: arrayOf(provisionerMessages.bootEventList, 'events'),
  },
  'GET /api/v2/nodes/:id/health': {
    tag: nodes,
    summary: "The aliveness probe's view of the node",
    query: { limit: q(positive, 'probe records (1–500, default 50)') },
    response: fromRpc(alivenessMessages.nodeHealth),
  },

  // roles
  'GET /api/v2/roles': { tag: 'roles', summary: 'List roles', response: inv('role.list') },
  'GET /api/v2/roles/:id': { tag: 'roles', summary: 'Show a role', response: inv('role.get') },

  // node_roles
  'GET /api/v2/node_roles': {
    tag: noderoles,
    summary: 'List noderoles',
    query: noderoleQuery,
    response: inv('noderole.list'),
  },
  'POST /api/v2/node_roles': {
    tag: noderoles,
    summary: 'Bind a role to a node (a proposed noderole)',
    body: body('noderole.create', { node: 'web1.lab.crowbar.test', role: 'test-top' }),
    status: 201,
    response: inv('noderole.create'),
  },
  'GET /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: 'Show a noderole (with its run log)',
    params: { id: 'noderole id' },
    response: inv('noderole.get'),
  },
  'PUT /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: "Replace a proposed noderole's data",
    params: { id: 'noderole id' },
    body: dataBody,
    response: inv('noderole.update'),
  },
  'DELETE /api/v2/node_roles/:id': {
    tag: noderoles,
    summary: 'Delete a noderole (and its never-run children)',
    params: { id: 'noderole id' },
    response: inv('noderole.delete'),
  },
  ...Object.fromEntries(
    (['retry', 'propose', 'commit'] as const).map((a) => [
      `PUT /api/v2/node_roles/:id/${a}`,
      {
        tag: noderoles,
        summary: { retry: 'Run it again', propose: 'Propose it', commit: 'Commit it' }[a],
        params: { id: 'noderole id' },
        response: inv(`noderole.${a}`),
      } satisfies RouteDoc,
    ]),
  ),
  'GET /api/v2/node_roles/:id/attribs/:attrib': {
    tag: noderoles,
    summary: 'Read an attrib of the noderole',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/node_roles/:id/attribs/:attrib': {
    tag: noderoles,
    summary: 'Write an attrib into the proposed data',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },

  // deployments
  'GET /api/v2/deployments': {
    tag: deployments,
    summary: 'List deployments',
    response: inv('deployment.list'),
  },
  'POST /api/v2/deployments': {
    tag: deployments,
    summary: 'Create a deployment',
    body: body('deployment.create', { name: 'web', parent: 'system' }),
    status: 201,
    response: inv('deployment.create'),
  },
  'GET /api/v2/deployments/:id': {
    tag: deployments,
    summary: 'Show a deployment',
    response: inv('deployment.get'),
  },
  'DELETE /api/v2/deployments/:id': {
    tag: deployments,
    summary: 'Delete a deployment (not system, not one with children)',
    response: inv('deployment.delete'),
  },
  'PUT /api/v2/deployments/:id/propose': {
    tag: deployments,
    summary: 'Propose a deployment (the annealer leaves it alone)',
    response: inv('deployment.propose'),
  },
  'PUT /api/v2/deployments/:id/recall': {
    tag: deployments,
    summary: 'Recall a deployment (the same as propose)',
    response: inv('deployment.propose'),
  },
  'PUT /api/v2/deployments/:id/commit': {
    tag: deployments,
    summary: 'Commit a deployment',
    response: inv('deployment.commit'),
  },
  'GET /api/v2/deployments/:id/graph': {
    tag: deployments,
    summary: 'The noderole graph (vertices and parent→child edges)',
    response: inv('deployment.graph'),
  },
  'GET /api/v2/deployments/:id/preview': {
    tag: deployments,
    summary: 'What a commit would do, without doing it',
    response: inv('deployment.preview'),
  },
  'GET /api/v2/deployments/:id/node_roles': {
    tag: deployments,
    summary: "The deployment's noderoles",
    query: pageQuery,
    response: inv('noderole.list'),
  },
  'GET /api/v2/deployments/:id/deployment_roles': {
    tag: deployments,
    summary: "The deployment's roles",
    response: inv('deployment_role.list'),
  },

  // deployment_roles
  'GET /api/v2/deployment_roles': {
    tag: droles,
    summary: 'List deployment roles',
    response: inv('deployment_role.list'),
  },
  'POST /api/v2/deployment_roles': {
    tag: droles,
    summary: 'Add a role to a deployment',
    body: body('deployment_role.create', { deployment: 'web', role: 'test-writer' }),
    status: 201,
    response: inv('deployment_role.create'),
  },
  'GET /api/v2/deployment_roles/:id': {
    tag: droles,
    summary: 'Show a deployment role',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.get'),
  },
  'PUT /api/v2/deployment_roles/:id': {
    tag: droles,
    summary: 'Merge into the proposed data',
    params: { id: 'deployment role id' },
    body: dataBody,
    response: inv('deployment_role.update'),
  },
  'PUT /api/v2/deployment_roles/:id/commit': {
    tag: droles,
    summary: 'Commit the proposed data',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.commit'),
  },
  'PUT /api/v2/deployment_roles/:id/propose': {
    tag: droles,
    summary: 'Reset the proposed data to the committed data',
    params: { id: 'deployment role id' },
    response: inv('deployment_role.propose'),
  },
  'GET /api/v2/deployment_roles/:id/attribs/:attrib': {
    tag: droles,
    summary: 'Read an attrib of the deployment role',
    params: attribParams,
    response: inv('attrib.get'),
  },
  'PUT /api/v2/deployment_roles/:id/attribs/:attrib': {
    tag: droles,
    summary: 'Write an attrib into the proposed data',
    params: attribParams,
    body: valueBody,
    response: inv('attrib.set'),
  },
  'GET /api/v2/attribs': { tag: 'attribs', summary: 'List attribs', response: inv('attrib.list') },

  // anneal and runs
  'GET /api/v2/anneal': {
    tag: 'anneal',
    summary: 'The anneal (reference §3.9): 200 finished, 202 working or scheduled, 409 failed',
    response: ex(
      z.object({
        message: inventoryAnnealRpcs.status.response.shape.status,
        counts: inventoryAnnealRpcs.status.response.shape.counts,
      }),
      { message: 'finished', counts: { active: 12 } },
    ),
    alsoAnswers: {
      202: { description: 'working or scheduled' },
      409: { description: 'a noderole is in error' },
    },
  },
  'GET /api/v2/runs': {
    tag: 'anneal',
    summary: 'Runs in flight',
    query: {
      all: q(z.enum(['true', 'false']), '`true`: finished runs too, each with its reason'),
      ...pageQuery,
    },
    response: fromRpc(annealerMessages.runs),
  },
};
