import { z } from 'zod';
import { type InventoryOp, noderoleState } from './inventory.js';

/**
 * What each operator-API op of inventory (`inventory.api`, `inventoryOps`) answers: the gateway's
 * OpenAPI document describes its routes with these, and test/openapi-live.test.ts checks real answers
 * against them. Objects are open (`looseObject`): inventory may add a field without breaking a client.
 */
const id = z.number().int().positive();
const json = z.record(z.string(), z.unknown());
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
  hint: json,
  discovery: json,
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
  proposedData: json,
  committedData: json,
  sysdata: json,
  wall: json,
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
  proposedData: json,
  committedData: json,
});
export const deploymentRoleDetail = z.looseObject({
  id,
  deploymentId: id,
  role: z.string(),
  proposedData: json,
  committedData: json,
  wall: json,
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
  schema: json,
  default: z.unknown(),
  writable: z.boolean(),
  /** The role that owns it; null for a node-level attrib. */
  role: z.string().nullable(),
});
export const attribValue = z.looseObject({
  name: z.string(),
  value: z.unknown(),
  /** The proposed value, when it differs from the effective one. */
  proposed: z.unknown().optional(),
});
export const attribWritten = z.looseObject({
  name: z.string(),
  value: z.unknown(),
  /** True while the write waits in proposed data (a committed noderole or deployment role). */
  pending: z.boolean(),
});
const deleted = z.looseObject({ deleted: z.boolean() });

interface Answer {
  schema: z.ZodType;
  example: unknown;
}
const a = <S extends z.ZodType>(schema: S, example: z.input<S>): Answer => ({ schema, example });

/** The answer of every op the REST API calls (`node.rotate_credential` is registration's, never REST). */
export const inventoryOpResponses: Record<Exclude<InventoryOp, 'node.rotate_credential'>, Answer> = {
  'node.create': a(nodeDetail.extend({ credential: z.string() }), {
    ...nodeExample,
    credential: 'z__t2r7mIsi_bM_CMZv7e1mvDOgfvocU',
  }),
  'node.update': a(nodeDetail, nodeExample),
  'node.get': a(nodeDetail, nodeExample),
  'node.list': a(z.looseObject({ nodes: z.array(nodeListItem) }), { nodes: [nodeExample] }),
  'node.delete': a(deleted, { deleted: true }),
  'node.propose': a(nodeDetail, { ...nodeExample, states: ['proposed'], state: 'proposed' }),
  'node.commit': a(nodeDetail, nodeExample),
  'noderole.list': a(z.looseObject({ noderoles: z.array(noderoleRow) }), { noderoles: [noderoleExample] }),
  'noderole.get': a(noderoleDetail, noderoleExample),
  'noderole.create': a(noderoleDetail, noderoleExample),
  'noderole.update': a(noderoleDetail, { ...noderoleExample, proposedData: { test: { greeting: 'hi' } } }),
  'noderole.retry': a(noderoleDetail, { ...noderoleExample, state: 'todo' }),
  'noderole.propose': a(noderoleDetail, noderoleExample),
  'noderole.commit': a(noderoleDetail, { ...noderoleExample, state: 'todo' }),
  'noderole.delete': a(z.looseObject({ deleted: z.number().int().positive() }), { deleted: 1 }),
  'deployment.create': a(deployment, deploymentExample),
  'deployment.list': a(z.looseObject({ deployments: z.array(deployment) }), {
    deployments: [deploymentExample],
  }),
  'deployment.get': a(deployment, deploymentExample),
  'deployment.propose': a(deployment, deploymentExample),
  'deployment.commit': a(deployment, { ...deploymentExample, state: 'committed' }),
  'deployment.delete': a(deleted, { deleted: true }),
  'deployment.graph': a(deploymentGraph, {
    vertices: [
      { id: 6, node: 'web1.lab.crowbar.test', role: 'test-middle', state: 'active', cohort: 1 },
      { id: 7, node: 'web1.lab.crowbar.test', role: 'test-top', state: 'todo', cohort: 2 },
    ],
    edges: [{ parent: 6, child: 7 }],
  }),
  'deployment.preview': a(deploymentPreview, {
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
  }),
  'deployment_role.list': a(z.looseObject({ deployment_roles: z.array(deploymentRoleRow) }), {
    deployment_roles: [
      { id: 3, deploymentId: 2, deployment: 'web', role: 'test-top', proposedData: {}, committedData: {} },
    ],
  }),
  'deployment_role.create': a(z.looseObject({ id, deploymentId: id, role: z.string() }), {
    id: 3,
    deploymentId: 2,
    role: 'test-top',
  }),
  'deployment_role.get': a(deploymentRoleDetail, {
    id: 3,
    deploymentId: 2,
    role: 'test-top',
    proposedData: {},
    committedData: {},
    wall: {},
  }),
  'deployment_role.update': a(deploymentRoleDetail, {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: { test: { greeting: 'hi' } },
    committedData: {},
    wall: {},
  }),
  'deployment_role.commit': a(deploymentRoleDetail, {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: { test: { greeting: 'hi' } },
    committedData: { test: { greeting: 'hi' } },
    wall: {},
  }),
  'deployment_role.propose': a(deploymentRoleDetail, {
    id: 3,
    deploymentId: 2,
    role: 'test-writer',
    proposedData: {},
    committedData: {},
    wall: {},
  }),
  'role.list': a(z.looseObject({ roles: z.array(role) }), { roles: [roleExample] }),
  'role.get': a(role, roleExample),
  'attrib.list': a(z.looseObject({ attribs: z.array(attrib) }), {
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
  }),
  'attrib.get': a(attribValue, { name: 'test-rack', value: 'r1' }),
  'attrib.set': a(attribWritten, { name: 'test-rack', value: 'r1', pending: false }),
};
