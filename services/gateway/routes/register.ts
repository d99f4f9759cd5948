import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { parsePayload } from '../../../shared/bus/bus.js';
import {
  fqdn,
  type InventoryOp,
  type InventoryOpRequest,
  inventoryOpRpcs,
  inventoryRpcs,
  ipamMessages,
  jsonObject,
  type NodeSummary,
} from '../../../shared/catalogue/index.js';
import { checkDiscoveryToken, isMachineToken, mintDiscoveryToken } from '../../../shared/discovery-token.js';
import {
  ConflictError,
  CrowbarError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../../../shared/errors.js';
import { normaliseMac } from '../../../shared/mac.js';
import type { GatewayDeps } from '../app.js';
import { parseBody } from '../body.js';

export const joinTokenRequest = z
  .object({
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .default(3600),
  })
  .strict();

const mac = z.string().transform((s, ctx) => {
  const m = normaliseMac(s);
  if (m === null) ctx.addIssue({ code: 'custom', message: 'must be a MAC address like 52:54:00:12:34:56' });
  return m ?? '';
});
/** An OpenSSH public key line whose base64 blob really is a key of the named type. */
const hostKey = z
  .string()
  .max(4096)
  .refine((line) => {
    const m =
      /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) ([A-Za-z0-9+/]+={0,2})(?: [^\n]*)?$/.exec(line);
    if (!m) return false;
    const blob = Buffer.from(m[2]!, 'base64');
    if (blob.length < 4 + m[1]!.length || blob.toString('base64') !== m[2]) return false;
    const n = blob.readUInt32BE(0);
    return n === m[1]!.length && blob.toString('latin1', 4, 4 + n) === m[1];
  }, 'must be an OpenSSH public key line (type, base64 key of that type, optional comment)');

/** What a machine in discovery sends (the agent's registration). */
export const registration = z
  .object({
    macs: z.array(mac).min(1).max(64),
    bootMac: mac,
    hostKey,
    /** Its DHCP address with prefix, e.g. 198.18.0.23/24. */
    address: z.string().max(64).optional(),
    facts: jsonObject.default({}),
    /** A node re-registering with its own credential names itself. */
    node: z.number().int().positive().optional(),
    /** The name a known node re-entering discovery was booted with (crowbar.node); informational. */
    name: z.string().max(255).optional(),
  })
  .strict();

/** Largest registration body accepted (facts of a big machine are a few tens of KiB). */
const maxBody = 256 * 1024;

/**
 * Node-facing registration, mounted under /api/v2 (public: it checks its own credentials):
 * `POST node-api/register` with a discovery token (minted into discovery boot scripts by the
 * provisioner) or, for a node re-registering a new host key, with its own credential and `node`.
 * A new MAC becomes a node (`d<mac>.<domain>`, quarantined: available=false, discovery roles bound,
 * host key pinned, facts kept as its discovery data); the same MAC again is the same node. A known
 * node's host key changes only with that node's own token or credential.
 */
export function registerRoutes(deps: RegisterDeps): Hono {
  const app = new Hono();
  app.post('/node-api/register', async (c) => {
    const secret = bearer(c);
    const reg = await readRegistration(c);
    const caller = await authenticate(deps, secret, reg);
    // Only the nodes this machine could be: one statement in inventory, not every node's summary.
    const { nodes } = await deps.bus.request(inventoryRpcs.listNodes, {
      macs: reg.macs,
      ...(reg.node === undefined ? {} : { node: reg.node }),
    });
    const known = (nodes as NodeSummary[]).find(
      (n) => n.id === reg.node || n.macs.some((m) => reg.macs.includes(m.toLowerCase())),
    );
    if (!known) return registerNew(deps, c, reg, caller.joining);
    return registerKnown(deps, c, reg, known, caller);
  });
  /** Join tokens for machines installed without discovery (they run the provisioner's /join.sh). */
  app.post('/join_tokens', async (c) => {
    if (!deps.discoverySecret)
      throw new ConflictError('joining is not set up (no CROWBAR_DISCOVERY_SECRET)', { field: 'token' });
    const { ttlSeconds } = await parseBody(c, joinTokenRequest, 'join token request');
    const expires = Math.floor(deps.clock.now().getTime() / 1000) + ttlSeconds;
    const token = mintDiscoveryToken(deps.discoverySecret, { expires, nodeId: null }, 'join');
    deps.log.info({ expires: new Date(expires * 1000).toISOString() }, 'join token minted');
    return c.json(
      {
        token,
        expiresAt: new Date(expires * 1000).toISOString(),
        usage: 'on the machine, as root: curl -fsS http://<provisioner>:<port>/join.sh | sh -s -- <token>',
      },
      201,
    );
  });
  return app;
}

type RegisterDeps = GatewayDeps & { discoverySecret: string | undefined; domain: string };
type Registration = z.infer<typeof registration>;

/** Who is asking: the node a token or credential is scoped to (null: anonymous discovery), and whether it joins. */
interface Caller {
  scopedTo: number | null;
  joining: boolean;
}

function bearer(c: Context): string {
  const header = c.req.header('authorization') ?? '';
  const secret = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  if (!secret) throw new UnauthorizedError('missing discovery token (Authorization: Bearer <token>)');
  return secret;
}

async function readRegistration(c: Context): Promise<Registration> {
  const text = await c.req.text();
  if (text.length > maxBody)
    throw new ValidationError(`registration body over ${maxBody} bytes`, { field: 'body' });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ValidationError('registration body is not JSON', { field: 'body' });
  }
  const reg = parsePayload(registration, json, 'registration');
  if (!reg.macs.includes(reg.bootMac))
    throw new ValidationError('bootMac must be one of macs', { field: 'bootMac' });
  return reg;
}

/** An anonymous or node-scoped discovery (or join) token, or a node's own credential naming that node. */
async function authenticate(deps: RegisterDeps, secret: string, reg: Registration): Promise<Caller> {
  if (isMachineToken(secret)) {
    if (!deps.discoverySecret)
      throw new UnauthorizedError('registration is not set up (no CROWBAR_DISCOVERY_SECRET)');
    const t = checkDiscoveryToken(
      deps.discoverySecret,
      secret,
      Math.floor(deps.clock.now().getTime() / 1000),
    );
    if (!t.ok)
      throw new UnauthorizedError(
        `${secret.startsWith('cbj1.') ? 'join' : 'discovery'} token refused: ${t.reason}`,
      );
    return { scopedTo: t.claims.nodeId, joining: t.kind === 'join' };
  }
  if (reg.node === undefined || secret.length > 200)
    throw new UnauthorizedError('invalid discovery token or node credential');
  const v = await deps.bus
    .request(inventoryRpcs.verifyNodeCredential, { node: reg.node, secret })
    .catch(() => null);
  if (!v?.valid || v.nodeId !== reg.node) throw new UnauthorizedError('invalid node credential');
  return { scopedTo: reg.node, joining: false };
}

/** What discovery learnt of the machine, kept as the node's discovery data. */
function discoveryOf(reg: Registration) {
  return { facts: reg.facts, macs: reg.macs, bootMac: reg.bootMac, address: reg.address ?? null };
}

/** A machine no node claims becomes one, with its roles bound. */
async function registerNew(deps: RegisterDeps, c: Context, reg: Registration, joining: boolean) {
  if (reg.node !== undefined) throw new ValidationError(`node ${reg.node} does not exist`, { field: 'node' });
  // A joined machine keeps its own name (when it is a full one) and its address (the admin
  // network's hint, reference §7: "registered manually … hint admin IP").
  const ownName = joining && reg.name && fqdn.safeParse(reg.name).success ? reg.name : null;
  const name = ownName ?? `d${reg.bootMac.replaceAll(':', '-')}.${deps.domain}`;
  const v4 = reg.address?.split('/')[0];
  // The node and its boot roles in one transaction: an operator who sees the node can commit it, and
  // a commit before the roles were bound would leave them PROPOSED on a committed node.
  const created = await withRoleRetry(bootRoles(joining), () =>
    op(deps, c, 'node.create', {
      name,
      mac: reg.bootMac,
      alive: false,
      available: false,
      bootenv: joining ? 'local' : 'sledgehammer',
      sshHostKey: reg.hostKey,
      discovery: discoveryOf(reg),
      ...(joining && v4 && /^\d+\.\d+\.\d+\.\d+$/.test(v4) ? { hint: { 'admin-v4addr': v4 } } : {}),
      roles: bootRoles(joining),
    }),
  );
  const { id } = created;
  deps.log.info(
    { node: id, name, mac: reg.bootMac, address: reg.address ?? null, joined: joining },
    joining ? 'machine joined' : 'machine registered',
  );
  return c.json(
    {
      node: { id, name },
      credential: created.credential,
      bootenv: joining ? 'local' : 'sledgehammer',
      addresses: await adminAddresses(deps, id),
    },
    201,
  );
}

/** A known node registering again: its host key re-pinned only by itself, its roles completed, a new credential. */
async function registerKnown(
  deps: RegisterDeps,
  c: Context,
  reg: Registration,
  known: NodeSummary,
  caller: Caller,
) {
  if (known.sshHostKey && known.sshHostKey !== reg.hostKey) {
    if (caller.scopedTo !== known.id) {
      deps.log.warn(
        { node: known.id, name: known.name, mac: reg.bootMac },
        'registration refused: a known MAC presented another host key without the node’s credential',
      );
      throw new ConflictError(
        `MAC ${reg.bootMac} belongs to node ${known.name}, whose pinned host key differs; only that node's own credential can re-pin it`,
        { field: 'hostKey', rule: 'host key pinning' },
      );
    }
    deps.log.info({ node: known.id, name: known.name }, 'host key re-pinned at registration');
  }
  // A re-registration without facts (an installed OS joining with its credential) keeps the ones
  // discovery gathered.
  const keepFacts = Object.keys(reg.facts).length === 0 && known.sshHostKey !== null;
  await op(deps, c, 'node.update', {
    node: known.id,
    sshHostKey: reg.hostKey,
    ...(keepFacts ? {} : { discovery: discoveryOf(reg) }),
  });
  // A registration that failed half way (a busy inventory, network-ipam still starting) left the node
  // without its roles; the machine's retry binds what is missing.
  await bindBootRoles(deps, c, known.id, caller.joining);
  const { credential } = await op(deps, c, 'node.rotate_credential', { node: known.id });
  deps.log.info({ node: known.id, name: known.name, mac: reg.bootMac }, 'machine registered again');
  return c.json(
    {
      node: { id: known.id, name: known.name },
      credential,
      bootenv: known.bootenv,
      addresses: await adminAddresses(deps, known.id),
    },
    200,
  );
}

function op<K extends InventoryOp>(deps: GatewayDeps, c: Context, name: K, args: InventoryOpRequest<K>) {
  return deps.bus.request(inventoryOpRpcs[name], args, {
    timeoutMs: 30_000,
    correlationId: c.req.header('x-correlation-id') ?? crypto.randomUUID(),
  });
}

/**
 * The node's admin-network addresses, waited for up to 5 s (network-admin allocates them as it is
 * bound): an agent whose DHCP address is not among them renews at once and moves to its reservation.
 */
async function adminAddresses(deps: GatewayDeps, nodeId: number): Promise<string[]> {
  const end = Date.now() + 5000;
  for (;;) {
    const r = await deps.bus
      .request(ipamMessages.nodeAddresses, { nodeId, category: 'admin' }, { timeoutMs: 2000 })
      .catch(() => ({ allocations: [] }));
    const v4 = r.allocations.filter((a) => a.family === 'ipv4').map((a) => a.address);
    if (v4.length || Date.now() > end) return r.allocations.map((a) => a.address);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/**
 * The roles a registered machine needs: the discovery graph (reference §7 step 3) — or, joined,
 * crowbar-joined-node, which provides installed- and managed-node — and network-admin for its host
 * address.
 */
const bootRoles = (joining: boolean) => [
  joining ? 'crowbar-joined-node' : 'crowbar-managed-node',
  'network-admin',
];

/**
 * Runs a call that binds `roles`. When one cannot be bound yet (network-ipam still starting has not
 * defined network-admin) the registration answers 503 naming it, so the machine asks again (its agent
 * backs off) and the retry binds it, instead of a node left without an address.
 */
async function withRoleRetry<T>(roles: string[], call: () => Promise<T>): Promise<T> {
  return call().catch((err: unknown) => {
    if (!(err instanceof CrowbarError) || err instanceof UnavailableError || err.field !== 'role') throw err;
    throw new UnavailableError(
      `the node could not be bound to ${roles.join(' and ')} yet (${err.message}); register again`,
    );
  });
}

/** A known node (one registered by an older version, or half way) gets the boot roles it lacks. Idempotent. */
async function bindBootRoles(deps: GatewayDeps, c: Context, node: number, joining: boolean) {
  const { noderoles } = await op(deps, c, 'noderole.list', { node });
  const has = new Set(noderoles.map((r) => r.role));
  const [graph, network] = bootRoles(joining) as [string, string];
  const want = [
    ...(has.has('crowbar-managed-node') || has.has('crowbar-joined-node') ? [] : [graph]),
    ...(has.has(network) ? [] : [network]),
  ];
  for (const role of want) await withRoleRetry([role], () => op(deps, c, 'noderole.create', { node, role }));
}
