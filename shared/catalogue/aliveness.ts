import { z } from 'zod';
import { event, rpc, type StreamDecl } from './define.js';

/**
 * Messages owned by the aliveness-probe service: its verdicts (ping + SSH with the pinned host key,
 * with hysteresis), on-demand probes for the jig-runner, and the health view behind `GET nodes/:id/health`.
 * Aliveness itself is changed only through inventory's `node.set_alive`.
 */

const id = z.number().int().positive();

/** Where a probe stopped: ICMP (no echo reply) or SSH (handshake, host key, login or command). */
export const probeStage = z.enum(['icmp', 'ssh', 'none']);

/** What the hysteresis has concluded about a node. `suspect`: failing, not yet long enough to be dead. */
export const probeVerdict = z.enum(['unknown', 'alive', 'suspect', 'dead']);
export type ProbeVerdict = z.infer<typeof probeVerdict>;

export const probeRecord = z.object({
  at: z.string(),
  ok: z.boolean(),
  /** Stage that failed, or `none` when the probe passed (or was not possible). */
  stage: probeStage,
  /** `ok`, or the failure: "icmp timeout", "ssh timeout", "connection refused", "host key mismatch"... */
  reason: z.string(),
  address: z.string().nullable(),
  durationMs: z.number().nonnegative(),
  /** `periodic` sweep or `on-demand` (after a jig run). */
  trigger: z.enum(['periodic', 'on-demand']),
});
export type ProbeRecord = z.infer<typeof probeRecord>;

const probeExample = {
  at: '2026-11-25T12:00:00.000Z',
  ok: false,
  stage: 'ssh' as const,
  reason: 'host key mismatch',
  address: '198.18.0.81',
  durationMs: 12.5,
  trigger: 'periodic' as const,
};

export const alivenessMessages = {
  /** The probe's verdict on a node changed (hysteresis applied); `reported` says if inventory was told. */
  verdictChanged: event(
    'probe.verdict_changed',
    1,
    z.object({
      nodeId: id,
      node: z.string(),
      from: probeVerdict,
      to: probeVerdict,
      reason: z.string(),
      consecutiveFailures: z.number().int().nonnegative(),
      /** False when the node is unavailable (or a system node): probed for health only (reference §4.3). */
      reported: z.boolean(),
    }),
    {
      nodeId: 2,
      node: 'd52-54-00-12-34-56.cluster.example.com',
      from: 'suspect',
      to: 'dead',
      reason: 'connection refused',
      consecutiveFailures: 3,
      reported: true,
    },
  ),
  /**
   * Probes a node now (the jig-runner asks after each run, reference §3.3). The answer is this probe's
   * result; it also counts as one sample for the node's hysteresis.
   */
  probe: rpc(
    'aliveness-probe',
    'probe',
    1,
    z.object({ nodeId: id }),
    z.object({
      nodeId: id,
      alive: z.boolean(),
      reason: z.string(),
      stage: probeStage,
      address: z.string().nullable(),
      durationMs: z.number().nonnegative(),
      verdict: probeVerdict,
    }),
    {
      request: { nodeId: 2 },
      response: {
        nodeId: 2,
        alive: true,
        reason: 'ok',
        stage: 'none',
        address: '198.18.0.81',
        durationMs: 40,
        verdict: 'alive',
      },
    },
  ),
  /** Everything the probe knows about one node, for `GET nodes/:id/health`. */
  nodeHealth: rpc(
    'aliveness-probe',
    'node.health',
    1,
    z.object({ nodeId: id, limit: z.number().int().positive().max(500).default(50) }),
    z.object({
      nodeId: id,
      node: z.string(),
      verdict: probeVerdict,
      /** Inventory's flags as last seen by the probe. */
      alive: z.boolean(),
      available: z.boolean(),
      /** True when failures or recoveries are reported to inventory (available, not a system node). */
      reporting: z.boolean(),
      consecutiveFailures: z.number().int().nonnegative(),
      reason: z.string(),
      lastProbeAt: z.string().nullable(),
      lastSuccessAt: z.string().nullable(),
      lastFailureAt: z.string().nullable(),
      addresses: z.array(z.string()),
      hostKeyPinned: z.boolean(),
      /** Most recent first. */
      history: z.array(probeRecord),
    }),
    {
      request: { nodeId: 2, limit: 20 },
      response: {
        nodeId: 2,
        node: 'd52-54-00-12-34-56.cluster.example.com',
        verdict: 'dead',
        alive: false,
        available: true,
        reporting: true,
        consecutiveFailures: 3,
        reason: 'host key mismatch',
        lastProbeAt: '2026-11-25T12:00:00.000Z',
        lastSuccessAt: null,
        lastFailureAt: '2026-11-25T12:00:00.000Z',
        addresses: ['198.18.0.81'],
        hostKeyPinned: true,
        history: [probeExample],
      },
    },
  ),
};

export const alivenessStreams: StreamDecl[] = [];
