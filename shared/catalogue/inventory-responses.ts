import { z } from 'zod';
import { noderoleState } from './inventory.js';
import type { InventoryOp } from './inventory-ops.js';
import { json, jsonObject } from './json.js';

/**
 * What each operation of inventory's operator API answers (the response of its RPC in
 * `inventoryOpRpcs`): the gateway's OpenAPI document describes its routes with these, and
 * test/openapi-live.test.ts checks real answers against them. Objects are open (`looseObject`):
 * inventory may add a field without breaking a client.
 */
const id = z.number().int().positive();
/** PostgreSQL's text form of a timestamptz, e.g. `2026-12-02 00:14:57.879122+00`. */
const timestamp = z.string();

export const nodeListItem = z.looseObject({
  id,
  name: z.string(),
  description: z.string(),
  admin: z.boolean(),
  system: z.boolean(),
  alive: z.boolean(),
  available: z.boolean(),
  bootenv: z.string(),
  deploymentId: id,
  deployment: z.string(),
  /** Its noderoles' states; `state` is the one that wins (ERROR > TRANSITION > PROPOSED > TODO/BLOCKED > ACTIVE). */
  states: z.array(noderoleState),
  state: noderoleState,
});
export const nodeDetail = nodeListItem.extend({
  sshHostKey: z.string().nullable(),
  aliveReason: z.string(),
  quirks: z.array(z.string()),
  /** Optimistic concurrency: pass it back as `version` in `PUT nodes/:id`. */
  version: z.number().int().positive(),
  hint: jsonObject,
  discovery: jsonObject,
  createdAt: timestamp,
  updatedAt: timestamp,
});
const nodeExample: z.input<typeof nodeDetail> = {
  id: 3,
  name: 'web1.lab.crowbar.test',
  description: '',
  admin: false,
  system: false,
  alive: true,
  available: true,
  bootenv: 'local',
  deploymentId: 2,
  deployment: 'web',
  states: ['active', 'todo'],
  state: 'todo',
  sshHostKey: null,
  aliveReason: '',
  quirks: [],
  version: 2,
  hint: {},
  discovery: {},
  createdAt: '2026-12-02 00:14:57.879122+00',
  updatedAt: '2026-12-02 00:14:58.029331+00',
};

export const noderoleRow = z.looseObject({
  id,
  nodeId: id,
  node: z.string(),
  roleId: id,
  role: z.string(),
  deploymentId: id,
  deployment: z.string(),
  state: noderoleState,
  cohort: z.number().int().nonnegative(),
  runCount: z.number().int().nonnegative(),
  available: z.boolean(),
  /** The last run's log (the tail inventory keeps). */
  runlog: z.string(),
  version: z.number().int().positive(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const noderoleDetail = noderoleRow.extend({
  proposedData: jsonObject,
  committedData: jsonObject,
  sysdata: jsonObject,
  wall: jsonObject,
});
const noderoleExample: z.input<typeof noderoleDetail> = {
  id: 7,
  nodeId: 3,
  node: 'web1.lab.crowbar.test',
  roleId: 16,
  role: 'test-top',
  deploymentId: 2,
  deployment: 'web',
  state: 'proposed',
  cohort: 2,
  runCount: 0,
  available: true,
  runlog: '',
  version: 1,
  createdAt: '2026-12-02 00:14:58.043772+00',
  updatedAt: '2026-12-02 00:14:58.043772+00',
  proposedData: {},
  committedData: {},
  sysdata: {},
  wall: {},
};

export const deployment = z.looseObject({
  id,
  name: z.string(),
  parentId: id.nullable(),
  state: z.enum(['proposed', 'committed']),
  system: z.boolean(),
  description: z.string(),
});
const deploymentExample: z.input<typeof deployment> = {
  id: 2,
  name: 'web',
  parentId: 1,
  state: 'proposed',
  system: false,
  description: '',
};

export const deploymentGraph = z.looseObject({
  vertices: z.array(
    z.looseObject({ id, node: z.string(), role: z.string(), state: noderoleState, cohort: z.number().int() }),
  ),
  edges: z.array(z.looseObject({ parent: id, child: id })),
});
export const deploymentPreview = z.looseObject({
  deployment: z.looseObject({ id, name: z.string(), state: z.enum(['proposed', 'committed']) }),
  noderoles: z.array(
    z.looseObject({
      id,
      nodeId: id,
      node: z.string(),
      roleId: id,
      role: z.string(),
      cohort: z.number().int(),
      destructive: z.boolean(),
      from: noderoleState,
      to: noderoleState,
    }),
  ),
  nodes: z.array(z.looseObject({ id, name: z.string() })),
  bootenvChanges: z.array(z.looseObject({ nodeId: id, node: z.string(), from: z.string(), to: z.string() })),
});

export const deploymentRoleRow = z.looseObject({
  id,
  deploymentId: id,
  deployment: z.string(),
  role: z.string(),
  proposedData: jsonObject,
  committedData: jsonObject,
});
export const deploymentRoleDetail = z.looseObject({
  id,
  deploymentId: id,
  role: z.string(),
  proposedData: jsonObject,
  committedData: jsonObject,
  wall: jsonObject,
});

export const role = z.looseObject({
  id,
  name: z.string(),
  barclamp: z.string(),
  description: z.string(),
  jig: z.string(),
  owner: z.string().nullable(),
  flags: z.array(z.string()),
  requires: z.array(z.string()),
  wantsAttribs: z.array(z.string()),
  provides: z.array(z.string()),
  conflicts: z.array(z.string()),
});
const roleExample: z.input<typeof role> = {
  id: 16,
  name: 'test-top',
  barclamp: 'test',
  description: '',
  jig: 'noop',
  owner: null,
  flags: [],
  requires: ['test-middle'],
  wantsAttribs: [],
  provides: [],
  conflicts: [],
};

export const attrib = z.looseObject({
  name: z.string(),
  map: z.string(),
  description: z.string(),
  /** The JSON Schema values are checked against. */
  schema: jsonObject,
  default: json,
  writable: z.boolean(),
  /** The role that owns it; null for a node-level attrib. */
  role: z.string().nullable(),
});
export const attribValue = z.looseObject({
  name: z.string(),
  value: json,
  /** The proposed value, when it differs from the effective one. */
  proposed: json.optional(),
});
export const attribWritten = z.looseObject({
  name: z.string(),
  value: json,
  /** True while the write waits in proposed data (a committed noderole or deployment role). */
  pending: z.boolean(),
});
const deleted = z.looseObject({ deleted: z.boolean() });
/** A page of a list: `next` is the cursor of the page after it (pass it as `cursor`), null on the last. */
const next = z.string().nullable();

/** What each operation answers; `inventoryOpRpcs` pairs these with the requests of `inventoryOps`. */
export const inventoryOpResponses = {
  'node.create': nodeDetail.extend({ credential: z.string() }),
  'node.update': nodeDetail,
  /** Registration's (never a REST route): the node's new credential. */
  'node.rotate_credential': z.looseObject({ node: id, credential: z.string() }),
  'node.get': nodeDetail,
  'node.list': z.looseObject({ nodes: z.array(nodeListItem), next }),
  'node.delete': deleted,
  'node.propose': nodeDetail,
  'node.commit': nodeDetail,
  'noderole.list': z.looseObject({ noderoles: z.array(noderoleRow), next }),
  'noderole.get': noderoleDetail,
  'noderole.create': noderoleDetail,
  'noderole.update': noderoleDetail,
  'noderole.retry': noderoleDetail,
  'noderole.propose': noderoleDetail,
  'noderole.commit': noderoleDetail,
  'noderole.delete': z.looseObject({ deleted: z.number().int().positive() }),
  'deployment.create': deployment,
  'deployment.list': z.looseObject({ deployments: z.array(deployment) }),
  'deployment.get': deployment,
  'deployment.propose': deployment,
  'deployment.commit': deployment,
  'deployment.delete': deleted,
  'deployment.graph': deploymentGraph,
  'deployment.preview': deploymentPreview,
  'deployment_role.list': z.looseObject({ deployment_roles: z.array(deploymentRoleRow) }),
  'deployment_role.create': z.looseObject({ id, deploymentId: id, role: z.string() }),
  'deployment_role.get': deploymentRoleDetail,
  'deployment_role.update': deploymentRoleDetail,
  'deployment_role.commit': deploymentRoleDetail,
  'deployment_role.propose': deploymentRoleDetail,
  'role.list': z.looseObject({ roles: z.array(role) }),
  'role.get': role,
  'attrib.list': z.looseObject({ attribs: z.array(attrib) }),
  'attrib.get': attribValue,
  'attrib.set': attribWritten,
} satisfies Record<InventoryOp, z.ZodType>;

type Examples = { [K in InventoryOp]: z.input<(typeof inventoryOpResponses)[K]> };
/** One answer of each operation: its RPC's example response, and the OpenAPI document's. */
export const inventoryOpResponseExamples: Examples = {
  'node.create': {
    ...nodeExample,
    credential: 'z__t2r7mIsi_bM_CMZv7e1mvDOgfvocU',
  },
  'node.update': nodeExample,
  'node.rotate_credential': { node: 3, credential: 'z__t2r7mIsi_bM_CMZv7e1mvDOgfvocU' },
  'node.get': nodeExample,
  'node.list': { nodes: [nodeExample], next: '3' },
  'node.delete': { deleted: true },
  'node.propose': { ...nodeExample, states: ['proposed'], state: 'proposed' },
  'node.commit': nodeExample,
  'noderole.list': { noderoles: [noderoleExample], next: null },
  'noderole.get': noderoleExample,
  'noderole.create': noderoleExample,
  'noderole.update': { ...noderoleExample, proposedData: { test: { greeting: 'hi' } } },
  'noderole.retry': { ...noderoleExample, state: 'todo' },
  'noderole.propose': noderoleExample,
  'noderole.commit': { ...noderoleExample, state: 'todo' },
  'noderole.delete': { deleted: 1 },
  'deployment.create': deploymentExample,
  'deployment.list': {
    deployments: [deploymentExample],
  },
  'deployment.get': deploymentExample,
  'deployment.propose': deploymentExample,
  'deployment.commit': { ...deploymentExample, state: 'committed' },
  'deployment.delete': { deleted: true },
  'deployment.graph': {
    vertices: [
      { id: 6, node: 'web1.lab.crowbar.test', role: 'test-middle', state: 'active', cohort: 1 },
      { id: 7, node: 'web1.lab.crowbar.test', role: 'test-top', state: 'todo', cohort: 2 },
    ],
    edges: [{ parent: 6, child: 7 }],
  },
  'deployment.preview': {
    deployment: { id: 2, name: 'web', state: 'proposed' },
    noderoles: [
      {
        id: 7,
        nodeId: 3,
        node: 'web1.lab.crowbar.test',
        roleId: 16,
        role: 'test-top',
        cohort: 2,
        destructive: false,
        from: 'proposed',
        to: 'todo',
      },
    ],
    nodes: [{ id: 3, name: 'web1.lab.crowbar.test' }],
    bootenvChanges: [],
  },
  'deployment_role.list': {
    deployment_roles: [
      { id: 3, deploymentId: 2, deployment: 'web', role: 'test-top', proposedData: {}, committedData: {} },
    ],
  },
  'deployment_role.create': {
    id: 3,
    deploymentId: 2,
    role: 'test-top',
  },
  'deployment_role.get': {
    id: 3,
    deploymentId: 2,
    role: 'test-top',
    proposedData: {},
    committedData: {},
    wall: {},
  },
  'deployment_role.update': {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: { test: { greeting: 'hi' } },
    committedData: {},
    wall: {},
  },
  'deployment_role.commit': {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: { test: { greeting: 'hi' } },
    committedData: { test: { greeting: 'hi' } },
    wall: {},
  },
  'deployment_role.propose': {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: {},
    committedData: {},
    wall: {},
  },
  'role.list': { roles: [roleExample] },
  'role.get': roleExample,
  'attrib.list': {
    attribs: [
      {
        name: 'dns-domain',
        map: 'crowbar/dns/domain',
        description: "The cluster's DNS domain",
        schema: { type: 'string' },
        default: 'crowbar.internal',
        writable: true,
        role: 'dns-service',
      },
    ],
  },
  'attrib.get': { name: 'test-rack', value: 'r1' },
  'attrib.set': { name: 'test-rack', value: 'r1', pending: false },
};
