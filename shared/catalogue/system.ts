import { z } from 'zod';
import { command, event, rpc } from './define.js';
import { jsonObject, wireJsonObject } from './json.js';

export const serviceNames = [
  'gateway',
  'inventory',
  'network-ipam',
  'annealer',
  'jig-runner',
  'dhcp-db',
  'dns-db',
  'aliveness-probe',
  'provisioner',
] as const;
export type ServiceName = (typeof serviceNames)[number];
export const serviceName = z.enum(serviceNames);

export const healthReport = z.object({
  service: serviceName,
  instance: z.string(),
  version: z.string(),
  status: z.enum(['up', 'degraded']),
  startedAt: z.string(),
  uptimeSeconds: z.number().nonnegative(),
  detail: jsonObject.default({}),
});
export type HealthReport = z.infer<typeof healthReport>;

const healthExample = {
  service: 'inventory' as const,
  instance: 'inventory-1',
  version: '0.1.0',
  status: 'up' as const,
  startedAt: '2026-11-25T10:00:00.000Z',
  uptimeSeconds: 12.5,
  detail: {},
};

const healthRpcFor = (s: ServiceName) =>
  rpc(s, 'health', 1, z.object({}), healthReport, {
    request: {},
    response: { ...healthExample, service: s },
  });

/** Health questions, one subject per service so the gateway can tell which one is missing. */
export const health = Object.fromEntries(serviceNames.map((s) => [s, healthRpcFor(s)])) as Record<
  ServiceName,
  ReturnType<typeof healthRpcFor>
>;

export const system = {
  serviceStarted: event(
    'service.started',
    1,
    z.object({ service: serviceName, instance: z.string(), version: z.string() }),
    { service: 'annealer', instance: 'annealer-1', version: '0.1.0' },
  ),
  serviceStopped: event(
    'service.stopped',
    1,
    z.object({ service: serviceName, instance: z.string(), reason: z.string() }),
    { service: 'annealer', instance: 'annealer-1', reason: 'SIGTERM' },
  ),
  /** A message that exhausted its deliveries or was rejected; kept in DEAD and announced here. */
  messageDeadLettered: event(
    'message.dead_lettered',
    1,
    z.object({
      stream: z.string(),
      consumer: z.string(),
      subject: z.string(),
      deliveries: z.number().int().nonnegative(),
      reason: z.string(),
      messageId: z.string().nullable(),
    }),
    {
      stream: 'DIAG',
      consumer: 'diag',
      subject: 'crowbar.cmd.diag.diag.ping.v1',
      deliveries: 5,
      reason: 'handler failed',
      messageId: null,
    },
  ),
};

/** Diagnostics: a round trip through a work queue, used by tests, `crowbar diag` and the bus benchmark. */
export const diag = {
  ping: command(
    'DIAG',
    'diag.ping',
    1,
    z.object({ seq: z.number().int().nonnegative(), note: z.string().max(200).default('') }),
    {
      seq: 1,
      note: 'hello',
    },
  ),
  ponged: event('diag.ponged', 1, z.object({ seq: z.number().int().nonnegative(), by: z.string() }), {
    seq: 1,
    by: 'inventory-1',
  }),
};

/**
 * The service-provided jig: a run of a role whose `owner` is a service is answered by that service over
 * request/reply. The answer's `wall` becomes the noderole's wall; a thrown error fails the run.
 */
export const roleRunRequest = z.object({
  runId: z.number().int().positive(),
  noderoleId: z.number().int().positive(),
  role: z.string(),
  nodeId: z.number().int().positive(),
  node: z.string(),
  /** The staged run data (merged attribs), as the script jig's attrs.json. */
  data: wireJsonObject,
});
export const roleRunResponse = z.object({
  wall: jsonObject.default({}),
  log: z.string().max(65_536).default(''),
});
const roleRunFor = (s: ServiceName) =>
  rpc(s, 'role.run', 1, roleRunRequest, roleRunResponse, {
    request: {
      runId: 1,
      noderoleId: 7,
      role: 'network-admin',
      nodeId: 2,
      node: 'n1.cluster.example.com',
      data: {},
    },
    response: { wall: { crowbar_wall: { network: { admin: { addresses: ['198.18.0.81/24'] } } } }, log: '' },
  });
export const roleRun = Object.fromEntries(serviceNames.map((s) => [s, roleRunFor(s)])) as Record<
  ServiceName,
  ReturnType<typeof roleRunFor>
>;
