import { z } from 'zod';
import { event, recordRef, rpc, type StreamDecl } from './define.js';
import { jsonObject, wireJsonObject } from './json.js';

/** Noderole states, codes as in the original (reference §2.1). */
export const noderoleStates = ['error', 'active', 'todo', 'transition', 'blocked', 'proposed'] as const;
export const noderoleState = z.enum(noderoleStates);
export type NoderoleState = z.infer<typeof noderoleState>;
export const stateCode: Record<NoderoleState, number> = {
  error: -1,
  active: 0,
  todo: 1,
  transition: 2,
  blocked: 3,
  proposed: 4,
};

const id = z.number().int().positive();
/** FQDN with at least three labels, lower-case (reference §1.2). */
export const fqdn = z
  .string()
  .max(255)
  .regex(/^([a-z0-9_-]{1,63}\.){2,}[a-z]{2,63}$/, 'must be a lower-case FQDN with at least three labels');

/** What other services need to know about a node. */
export const nodeSummary = z.object({
  id,
  name: fqdn,
  admin: z.boolean(),
  system: z.boolean(),
  alive: z.boolean(),
  available: z.boolean(),
  bootenv: z.string(),
  deploymentId: id,
  deployment: z.string(),
  /** MACs from hint admin_macs and discovery, upper-case, sorted (dhcp-db and DNS templates use them). */
  macs: z.array(z.string()),
  /** Role names bound to the node (DNS filters match on them). */
  roles: z.array(z.string()),
  /** SSH host key pinned at registration (OpenSSH public key line), or null. */
  sshHostKey: z.string().nullable(),
  /**
   * Addresses the operator asked for, from the node's hint: `<network>-v4addr` / `<network>-v6addr` →
   * address (reference §5.5: network-ipam uses them when an allocation comes without a suggestion).
   */
  addressHints: z.record(z.string(), z.string()).default({}),
});
export type NodeSummary = z.infer<typeof nodeSummary>;

const nodeExample: z.input<typeof nodeSummary> = {
  id: 2,
  name: 'd52-54-00-12-34-56.cluster.example.com',
  admin: false,
  system: false,
  alive: true,
  available: true,
  bootenv: 'local',
  deploymentId: 1,
  deployment: 'system',
  macs: ['52:54:00:12:34:56'],
  roles: ['crowbar-managed-node'],
  sshHostKey: null,
};

export const noderoleSummary = z.object({
  id,
  roleId: id,
  role: z.string(),
  nodeId: id,
  node: fqdn,
  deploymentId: id,
  deployment: z.string(),
  state: noderoleState,
  runCount: z.number().int().nonnegative(),
  cohort: z.number().int().nonnegative(),
});
export type NoderoleSummary = z.infer<typeof noderoleSummary>;
const noderoleExample: z.input<typeof noderoleSummary> = {
  id: 7,
  roleId: 3,
  role: 'dns-client',
  nodeId: 2,
  node: 'd52-54-00-12-34-56.cluster.example.com',
  deploymentId: 1,
  deployment: 'system',
  state: 'todo',
  runCount: 0,
  cohort: 2,
};

const noderoleHook = (state: NoderoleState) =>
  event(
    `noderole.${state}`,
    1,
    z.object({ noderole: noderoleSummary, from: noderoleState.nullable(), reason: z.string().default('') }),
    { noderole: { ...noderoleExample, state }, from: null, reason: '' },
  );

export const deploymentSummary = z.object({
  id,
  name: z.string(),
  parentId: id.nullable(),
  state: z.enum(['proposed', 'committed']),
  system: z.boolean(),
});
const deploymentExample = { id: 3, name: 'ceph', parentId: 1, state: 'proposed' as const, system: false };

/** Inventory's facts: the original hooks as events. */
export const inventoryEvents = {
  nodeCreated: event('node.created', 1, z.object({ node: nodeSummary }), { node: nodeExample }),
  nodeChanged: event(
    'node.changed',
    1,
    z.object({ node: nodeSummary, changed: z.array(z.string()), reason: z.string().default('') }),
    {
      node: nodeExample,
      changed: ['alive'],
      reason: 'probe: ssh timeout',
    },
  ),
  nodeDeleted: event('node.deleted', 1, z.object({ node: nodeSummary }), { node: nodeExample }),
  noderoleProposed: noderoleHook('proposed'),
  noderoleTodo: noderoleHook('todo'),
  noderoleBlocked: noderoleHook('blocked'),
  noderoleTransition: noderoleHook('transition'),
  noderoleActive: noderoleHook('active'),
  noderoleError: noderoleHook('error'),
  noderoleDeleted: event('noderole.deleted', 1, z.object({ noderole: noderoleSummary }), {
    noderole: noderoleExample,
  }),
  deploymentCreated: event('deployment.created', 1, z.object({ deployment: deploymentSummary }), {
    deployment: deploymentExample,
  }),
  deploymentCommitted: event('deployment.committed', 1, z.object({ deployment: deploymentSummary }), {
    deployment: deploymentExample,
  }),
  deploymentProposed: event('deployment.proposed', 1, z.object({ deployment: deploymentSummary }), {
    deployment: deploymentExample,
  }),
  deploymentDeleted: event('deployment.deleted', 1, z.object({ deployment: deploymentSummary }), {
    deployment: deploymentExample,
  }),
};

const nodeRef = recordRef();

/** Questions other services ask inventory. */
export const inventoryRpcs = {
  getNode: rpc('inventory', 'node.get', 1, z.object({ node: nodeRef }), nodeSummary, {
    request: { node: 'd52-54-00-12-34-56.cluster.example.com' },
    response: nodeExample,
  }),
  /**
   * Every node's summary, or with `node` or `macs` only the nodes with that id or one of those MACs (any
   * case): registration finds a machine's node so, in one statement, however many nodes there are.
   */
  listNodes: rpc(
    'inventory',
    'node.list',
    1,
    z.object({
      node: id.optional(),
      macs: z.array(z.string().min(1).max(64)).max(64).optional(),
    }),
    z.object({ nodes: z.array(nodeSummary) }),
    {
      request: { macs: ['52:54:00:12:34:56'] },
      response: { nodes: [nodeExample] },
    },
  ),
  /**
   * Defines (or updates) a role owned by another service, e.g. `network-admin` from network-ipam.
   * Idempotent by name.
   */
  defineRole: rpc(
    'inventory',
    'role.define',
    1,
    z.object({
      name: z.string().regex(/^[a-z][-_a-z0-9]*$/),
      barclamp: z.string(),
      description: z.string().default(''),
      jig: z.string(),
      requires: z.array(z.string()).default([]),
      flags: z.array(z.string()).default([]),
      template: jsonObject.default({}),
      /** The service that answers this role's runs (service-provided jig) and sysdata. */
      owner: z.string().nullable().default(null),
    }),
    z.object({ id, name: z.string() }),
    {
      request: {
        name: 'network-admin',
        barclamp: 'network',
        jig: 'service',
        requires: ['network-server'],
        flags: ['implicit', 'milestone'],
        owner: 'network-ipam',
      },
      response: { id: 40, name: 'network-admin' },
    },
  ),
  deleteRole: rpc(
    'inventory',
    'role.delete',
    1,
    z.object({ name: z.string() }),
    z.object({ deleted: z.boolean() }),
    {
      request: { name: 'network-storage' },
      response: { deleted: true },
    },
  ),
  /** Binds a role to a node (the binding algorithm); returns the noderole. Idempotent. */
  bindRole: rpc(
    'inventory',
    'noderole.bind',
    1,
    z.object({ node: nodeRef, role: z.string(), deployment: nodeRef.optional() }),
    noderoleSummary,
    {
      request: { node: 2, role: 'network-admin' },
      response: noderoleExample,
    },
  ),
  /** Aliveness reports from the probe (and node self-reports relayed by the gateway). */
  setAlive: rpc(
    'inventory',
    'node.set_alive',
    1,
    z.object({ node: nodeRef, alive: z.boolean(), reason: z.string().max(500) }),
    z.object({ node: nodeSummary, changed: z.boolean() }),
    {
      request: { node: 2, alive: false, reason: 'ssh: host key mismatch' },
      response: { node: nodeExample, changed: true },
    },
  ),
  /** Checks a node's own credential (issued at registration) for node-facing endpoints. */
  verifyNodeCredential: rpc(
    'inventory',
    'node.verify_credential',
    1,
    z.object({ node: nodeRef, secret: z.string().min(1).max(200) }),
    z.object({ valid: z.boolean(), nodeId: id.nullable() }),
    { request: { node: 2, secret: 'abc' }, response: { valid: true, nodeId: 2 } },
  ),
};

export const inventoryStreams: StreamDecl[] = [];

const runRequest = z.object({ noderoleId: id, token: z.string().min(1).max(200) });
/** Run data, hints and walls: JSON objects, not walked on the hot path. */
const jsonBlob = wireJsonObject;

const startRunRequest = runRequest.extend({ rerun: z.boolean().default(false) });
const startRunResponse = z.object({
  started: z.boolean(),
  reason: z.string(),
  skipJig: z.boolean().default(false),
  /** Why the jig is skipped (the runlog the noderole gets), when `skipJig`. */
  skipReason: z.string().optional(),
  role: z
    .object({
      name: z.string(),
      jig: z.string(),
      owner: z.string().nullable(),
      destructive: z.boolean(),
      scripts: z.record(z.string(), z.string()),
      timeoutSeconds: z.number().int().positive(),
    })
    .optional(),
  node: z.object({ id, name: z.string(), sshHostKey: z.string().nullable(), hint: jsonBlob }).optional(),
  data: jsonBlob.optional(),
});
const finishRunRequest = runRequest.extend({
  ok: z.boolean(),
  wall: jsonBlob.nullable(),
  runlog: z.string().max(1_000_000),
  /** The run never reached a jig runner: put the noderole back in line instead of failing it. */
  requeue: z.boolean().default(false),
});
const finishRunResponse = z.object({ applied: z.boolean(), state: z.string() });
/** One item of a batch answer: its result, or why that item alone failed. */
const batchResult = <R extends z.ZodType>(r: R) =>
  z.union([z.object({ result: r }), z.object({ error: z.string() })]);

/** What the annealer asks inventory: runnable noderoles, start a run (fenced), finish it. */
export const inventoryAnnealRpcs = {
  runnable: rpc(
    'inventory',
    'anneal.runnable',
    1,
    z.object({
      limit: z.number().int().positive().max(1000),
      excludeNodeIds: z.array(id).max(10_000).default([]),
    }),
    z.object({ candidates: z.array(z.object({ noderoleId: id, nodeId: id, cohort: z.number().int() })) }),
    {
      request: { limit: 10, excludeNodeIds: [] },
      response: { candidates: [{ noderoleId: 7, nodeId: 2, cohort: 1 }] },
    },
  ),
  /** Several starts in one inventory transaction (the annealer groups them under load). */
  startRuns: rpc(
    'inventory',
    'runs.start',
    1,
    z.object({ runs: z.array(startRunRequest).min(1).max(500) }),
    z.object({ results: z.array(batchResult(startRunResponse)) }),
    {
      request: { runs: [{ noderoleId: 7, token: 'run-1-1', rerun: false }] },
      response: { results: [{ result: { started: false, reason: 'noderole gone', skipJig: false } }] },
    },
  ),
  /** Several results in one inventory transaction; each is fenced by its own token. */
  finishRuns: rpc(
    'inventory',
    'runs.finish',
    1,
    z.object({ runs: z.array(finishRunRequest).min(1).max(500) }),
    z.object({ results: z.array(batchResult(finishRunResponse)) }),
    {
      request: { runs: [{ noderoleId: 7, token: 'run-1-1', ok: true, wall: {}, runlog: '' }] },
      response: {
        results: [{ result: { applied: true, state: 'active' } }, { error: 'noderole 9: deadlock' }],
      },
    },
  ),
  status: rpc(
    'inventory',
    'anneal.status',
    1,
    z.object({}),
    z.object({
      status: z.enum(['failed', 'working', 'scheduled', 'finished']),
      counts: z.record(z.string(), z.number()),
    }),
    { request: {}, response: { status: 'finished', counts: { active: 12 } } },
  ),
};
