import { z } from 'zod';
import { type RpcDef, recordRef, rpc } from './define.js';
import { fqdn, noderoleState } from './inventory.js';
import { inventoryOpResponseExamples, inventoryOpResponses } from './inventory-responses.js';
import { json, jsonObject } from './json.js';

/**
 * The operator API's operations on inventory resources, one RPC each (`inventoryOpRpcs`). The gateway
 * validates HTTP input with the same request schemas (`inventoryOps`) that inventory checks again on
 * arrival; the answers are in inventory-responses.ts.
 */
const id = z.number().int().positive();
const ref = recordRef();
/** A role or attrib name as a client writes it (looked up, never stored as given). */
const roleName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^\P{Cc}+$/u, 'must be a name without control characters');
/** Node fields that create and update share; names are lower-cased before the FQDN check. */
const nodeName = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(fqdn);
const bootenvName = z
  .string()
  .regex(/^[a-z0-9][-_.a-z0-9]*$/, 'must be a bootenv name such as local or debian-12-install')
  .max(100);
const sshPublicKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/,
    'must be an OpenSSH public key line',
  );
/**
 * Paging of a list (keyset, so a page never shifts when rows are added): at most `limit` rows (default
 * 500, at most 1000) after `cursor`, the `next` of the page before; the answer's `next` is null on the
 * last page. Cursors are opaque to clients.
 */
export const pageLimit = { default: 500, max: 1000 } as const;
const limit = z
  .number()
  .int()
  .min(1, `must be from 1 to ${pageLimit.max}`)
  .max(pageLimit.max, `must be from 1 to ${pageLimit.max}`)
  .default(pageLimit.default);
const cursor = (shape: RegExp) =>
  z.string().max(40).regex(shape, "must be the `next` of a previous page's answer").optional();
export const inventoryOps = {
  'node.create': z.object({
    name: nodeName,
    description: z.string().max(1000).optional(),
    admin: z.boolean().optional(),
    system: z.boolean().optional(),
    alive: z.boolean().optional(),
    available: z.boolean().optional(),
    bootenv: bootenvName.optional(),
    deployment: ref.optional(),
    hint: jsonObject.optional(),
    discovery: jsonObject.optional(),
    sshHostKey: sshPublicKey.nullable().optional(),
    mac: z
      .string()
      .regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, 'must be a MAC address like 52:54:00:12:34:56')
      .optional(),
    /**
     * Roles bound to the new node in the same transaction, so that nobody ever sees (or commits) the
     * node without them: when one cannot be bound, the node is not created either.
     */
    roles: z.array(roleName).max(16).optional(),
  }),
  'node.update': z.object({
    node: ref,
    /** Optimistic concurrency: when given, the update applies only if the node is still at this version. */
    version: z.number().int().positive().optional(),
    name: nodeName.optional(),
    description: z.string().max(1000).optional(),
    alive: z.boolean().optional(),
    available: z.boolean().optional(),
    bootenv: bootenvName.optional(),
    deployment: ref.optional(),
    hint: jsonObject.optional(),
    discovery: jsonObject.optional(),
    sshHostKey: sshPublicKey.nullable().optional(),
  }),
  /** A new credential for the node (the old one stops working); for registration, never a REST route. */
  'node.rotate_credential': z.object({ node: ref }),
  'node.get': z.object({ node: ref }),
  /** In id order; `cursor` is the last id of the page before. */
  'node.list': z.object({ limit, cursor: cursor(/^\d{1,15}$/) }),
  'node.delete': z.object({ node: ref }),
  'node.propose': z.object({ node: ref }),
  'node.commit': z.object({ node: ref }),
  /** In cohort order (parents before children), then id; `cursor` is `<cohort>.<id>` of the last row. */
  'noderole.list': z.object({
    node: ref.optional(),
    deployment: ref.optional(),
    role: roleName.optional(),
    state: noderoleState.optional(),
    limit,
    cursor: cursor(/^\d{1,9}\.\d{1,15}$/),
  }),
  'noderole.get': z.object({ noderole: id.optional(), node: ref.optional(), role: roleName.optional() }),
  'noderole.create': z.object({
    node: ref,
    role: roleName,
    deployment: ref.optional(),
    data: jsonObject.optional(),
  }),
  'noderole.update': z.object({
    noderole: id,
    data: jsonObject,
    version: z.number().int().positive().optional(),
  }),
  'noderole.retry': z.object({ noderole: id }),
  'noderole.propose': z.object({ noderole: id }),
  'noderole.commit': z.object({ noderole: id }),
  'noderole.delete': z.object({ noderole: id }),
  'deployment.create': z.object({
    name: z
      .string()
      .regex(/^[a-z][-_a-z0-9]*$/, 'must start with a letter: lower-case letters, digits, - and _')
      .max(100),
    parent: ref.optional(),
    description: z.string().max(1000).optional(),
  }),
  'deployment.list': z.object({}),
  'deployment.get': z.object({ deployment: ref }),
  'deployment.propose': z.object({ deployment: ref }),
  'deployment.commit': z.object({ deployment: ref }),
  'deployment.delete': z.object({ deployment: ref }),
  'deployment.graph': z.object({ deployment: ref }),
  /** What committing the deployment would do: noderoles going TODO, nodes touched, bootenv changes. */
  'deployment.preview': z.object({ deployment: ref }),
  'deployment_role.list': z.object({ deployment: ref.optional() }),
  'deployment_role.create': z.object({ deployment: ref, role: roleName, data: jsonObject.optional() }),
  'deployment_role.get': z.object({ id: id }),
  'deployment_role.update': z.object({ id: id, data: jsonObject }),
  'deployment_role.commit': z.object({ id: id }),
  /** Proposed data back to the committed data (reference §1.8). */
  'deployment_role.propose': z.object({ id: id }),
  'role.list': z.object({}),
  'role.get': z.object({ role: ref }),
  'attrib.list': z.object({
    target: z.enum(['node', 'noderole', 'deployment_role', 'role']).optional(),
    id: id.optional(),
  }),
  'attrib.get': z.object({
    target: z.enum(['node', 'noderole', 'deployment_role', 'role']),
    id: ref,
    attrib: roleName,
  }),
  'attrib.set': z.object({
    target: z.enum(['node', 'noderole', 'deployment_role']),
    id: ref,
    attrib: roleName,
    /** Left out, the attrib's own schema check names it (`value: must be string, got undefined`). */
    value: json.optional(),
  }),
} as const;
export type InventoryOp = keyof typeof inventoryOps;

type Request<K extends InventoryOp> = (typeof inventoryOps)[K];
type Response<K extends InventoryOp> = (typeof inventoryOpResponses)[K];
/** What an operation is sent (as a caller writes it, and as its handler gets it), and what it answers. */
export type InventoryOpRequest<K extends InventoryOp> = z.input<Request<K>>;
export type InventoryOpArgs<K extends InventoryOp> = z.output<Request<K>>;
export type InventoryOpAnswer<K extends InventoryOp> = z.input<Response<K>>;
export type InventoryOpResult<K extends InventoryOp> = z.output<Response<K>>;

/**
 * One operation's RPC; `readOnly` when it only reads (inventory then runs it in a read-only transaction).
 * The schemas are typed by what they take and give, so code generic over the operation (one server or
 * client for all of them) keeps each operation's own types.
 */
export type InventoryOpRpc<K extends InventoryOp> = RpcDef<
  z.ZodType<InventoryOpArgs<K>, InventoryOpRequest<K>>,
  z.ZodType<InventoryOpResult<K>, InventoryOpAnswer<K>>
>;
export const isInventoryOp = (name: string): name is InventoryOp => Object.hasOwn(inventoryOps, name);

// The schemas typed as mapped types, so that `operation` (generic in the op) knows each op's own.
const requests: { [K in InventoryOp]: InventoryOpRpc<K>['request'] } = inventoryOps;
const answers: { [K in InventoryOp]: InventoryOpRpc<K>['response'] } = inventoryOpResponses;

const reads = { readOnly: true };
const writes = { readOnly: false };
function operation<K extends InventoryOp>(
  op: K,
  access: { readOnly: boolean },
  example: InventoryOpRequest<K>,
): InventoryOpRpc<K> {
  const examples = { request: example, response: inventoryOpResponseExamples[op] };
  return rpc('inventory', `operator.${op}`, 1, requests[op], answers[op], examples, access);
}

/** Every operation of the operator API; a mapped type, so `inventoryOpRpcs[k]` keeps its own schemas. */
export const inventoryOpRpcs: { [K in InventoryOp]: InventoryOpRpc<K> } = {
  'node.create': operation('node.create', writes, {
    name: 'web1.lab.crowbar.test',
    alive: true,
    deployment: 'web',
  }),
  'node.update': operation('node.update', writes, { node: 3, description: 'rack 4', version: 2 }),
  'node.rotate_credential': operation('node.rotate_credential', writes, { node: 3 }),
  'node.get': operation('node.get', reads, { node: 'web1.lab.crowbar.test' }),
  'node.list': operation('node.list', reads, { limit: 500, cursor: '1200' }),
  'node.delete': operation('node.delete', writes, { node: 3 }),
  'node.propose': operation('node.propose', writes, { node: 3 }),
  'node.commit': operation('node.commit', writes, { node: 3 }),
  'noderole.list': operation('noderole.list', reads, { node: 3, state: 'todo' }),
  'noderole.get': operation('noderole.get', reads, { node: 3, role: 'test-top' }),
  'noderole.create': operation('noderole.create', writes, { node: 3, role: 'test-top' }),
  'noderole.update': operation('noderole.update', writes, {
    noderole: 7,
    data: { test: { greeting: 'hi' } },
    version: 1,
  }),
  'noderole.retry': operation('noderole.retry', writes, { noderole: 7 }),
  'noderole.propose': operation('noderole.propose', writes, { noderole: 7 }),
  'noderole.commit': operation('noderole.commit', writes, { noderole: 7 }),
  'noderole.delete': operation('noderole.delete', writes, { noderole: 7 }),
  'deployment.create': operation('deployment.create', writes, { name: 'web', parent: 'system' }),
  'deployment.list': operation('deployment.list', reads, {}),
  'deployment.get': operation('deployment.get', reads, { deployment: 'web' }),
  'deployment.propose': operation('deployment.propose', writes, { deployment: 'web' }),
  'deployment.commit': operation('deployment.commit', writes, { deployment: 'web' }),
  'deployment.delete': operation('deployment.delete', writes, { deployment: 'web' }),
  'deployment.graph': operation('deployment.graph', reads, { deployment: 'web' }),
  'deployment.preview': operation('deployment.preview', reads, { deployment: 2 }),
  'deployment_role.list': operation('deployment_role.list', reads, { deployment: 'web' }),
  'deployment_role.create': operation('deployment_role.create', writes, {
    deployment: 'web',
    role: 'test-top',
  }),
  'deployment_role.get': operation('deployment_role.get', reads, { id: 3 }),
  'deployment_role.update': operation('deployment_role.update', writes, {
    id: 3,
    data: { test: { greeting: 'hi' } },
  }),
  'deployment_role.commit': operation('deployment_role.commit', writes, { id: 3 }),
  'deployment_role.propose': operation('deployment_role.propose', writes, { id: 3 }),
  'role.list': operation('role.list', reads, {}),
  'role.get': operation('role.get', reads, { role: 'test-top' }),
  'attrib.list': operation('attrib.list', reads, {}),
  'attrib.get': operation('attrib.get', reads, { target: 'node', id: 3, attrib: 'test-rack' }),
  'attrib.set': operation('attrib.set', writes, {
    target: 'node',
    id: 'web1.lab.crowbar.test',
    attrib: 'test-rack',
    value: 'r1',
  }),
};
