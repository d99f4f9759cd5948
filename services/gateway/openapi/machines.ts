import { z } from 'zod';
import { provisionerMessages } from '../../../shared/catalogue/index.js';
import { bootenvReport, selfReport } from '../routes/aliveness.js';
import { joinTokenRequest, registration } from '../routes/register.js';
import { arrayOf, bootEventQuery, ex, positive, q, type RouteDocs } from './docs.js';

const okList = z.object({
  node: z.number().int(),
  alive: z.boolean(),
  changed: z.boolean(),
  applied: z.boolean(),
});

/** The provisioner's routes and the node-facing ones (join tokens, registration, a node's own reports). */
export const machinesRouteDocs: RouteDocs = {
  // provisioner
  'GET /api/v2/bootenvs': {
    tag: 'provisioner',
    summary: 'List bootenvs',
    response: arrayOf(provisionerMessages.bootenvList, 'bootenvs'),
  },
  'GET /api/v2/boot_events': {
    tag: 'provisioner',
    summary: 'What machines fetched to boot (newest first)',
    query: { node: q(positive, 'only this node id'), mac: q(z.string(), 'only this MAC'), ...bootEventQuery },
    response: arrayOf(provisionerMessages.bootEventList, 'events'),
  },

  // machines (node-facing)
  'POST /api/v2/join_tokens': {
    tag: 'machines',
    summary: 'A join token for a machine installed without discovery',
    body: ex(joinTokenRequest, { ttlSeconds: 3600 }),
    status: 201,
    response: ex(z.object({ token: z.string(), expiresAt: z.string(), usage: z.string() }), {
      token: 'cbj1.eyJleHAiOjE3OTYxNzA0OTd9.c2ln',
      expiresAt: '2026-12-02T01:14:57.000Z',
      usage: 'on the machine, as root: curl -fsS http://<provisioner>:<port>/join.sh | sh -s -- <token>',
    }),
  },
  'POST /api/v2/node-api/register': {
    tag: 'machines',
    summary: 'Register a machine (discovery or join token, or the node credential)',
    auth: 'discovery',
    body: ex(registration, {
      macs: ['52:54:00:12:34:56'],
      bootMac: '52:54:00:12:34:56',
      hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
      address: '198.18.0.23/24',
      facts: { cpus: 2 },
    }),
    status: 201,
    response: ex(
      z.object({
        node: z.object({ id: z.number().int().positive(), name: z.string() }),
        credential: z.string(),
        bootenv: z.string(),
        addresses: z.array(z.string()),
      }),
      {
        node: { id: 3, name: 'd52-54-00-12-34-56.crowbar.internal' },
        credential: 'z__t2r7mIsi_bM_CMZv7e1mvDOgfvocU',
        bootenv: 'sledgehammer',
        addresses: ['198.18.0.81/24'],
      },
    ),
    alsoAnswers: { 200: { description: 'a known machine registered again' } },
  },
  'PUT /api/v2/node-api/nodes/:id/alive': {
    tag: 'machines',
    summary: "A node's own aliveness report",
    auth: 'node',
    params: { id: 'node id' },
    body: ex(selfReport, { alive: true }),
    response: ex(okList.extend({ reason: z.string().optional() }), {
      node: 3,
      alive: true,
      changed: true,
      applied: true,
    }),
    alsoAnswers: { 202: { description: 'an unavailable node reporting dead: acknowledged, not applied' } },
  },
  'PUT /api/v2/node-api/nodes/:id/bootenv': {
    tag: 'machines',
    summary: 'An installer sets its node to bootenv local',
    auth: 'node',
    params: { id: 'node id' },
    body: ex(bootenvReport, { bootenv: 'local' }),
    response: ex(z.object({ node: z.number().int(), bootenv: z.literal('local'), changed: z.boolean() }), {
      node: 3,
      bootenv: 'local',
      changed: true,
    }),
  },
};
