import { z } from 'zod';
import { command, event, rpc, type StreamDecl } from './define.js';
import { wireJsonObject } from './json.js';

/**
 * The annealer and the jig runners: the annealer claims runs (one per node, under a global cap) and puts
 * jobs on the JIG work queue; any number of jig-runner processes take them and report back through the
 * ANNEALER work queue. A fencing token per attempt makes late or duplicate results harmless.
 */
const id = z.number().int().positive();
/** Run data, hints and walls: JSON objects, not walked on the hot path. */
const blob = wireJsonObject;

export const jigJob = z.object({
  runId: id,
  token: z.string().min(1).max(200),
  noderoleId: id,
  role: z.string(),
  jig: z.enum(['noop', 'script', 'service']),
  owner: z.string().nullable(),
  destructive: z.boolean(),
  scripts: z.record(z.string(), z.string()),
  timeoutSeconds: z.number().int().positive(),
  node: z.object({ id, name: z.string(), sshHostKey: z.string().nullable(), hint: blob }),
  data: blob,
});
export type JigJob = z.infer<typeof jigJob>;

const jobExample: z.input<typeof jigJob> = {
  runId: 11,
  token: 'r11-3f2a',
  noderoleId: 7,
  role: 'test-writer',
  jig: 'script',
  owner: null,
  destructive: false,
  scripts: { '10-write.sh': 'write_attribute test/ok true\n' },
  timeoutSeconds: 600,
  node: {
    id: 2,
    name: 'n1.cluster.example.com',
    sshHostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB',
    hint: {},
  },
  data: { test: { greeting: 'hello' } },
};

export const annealerMessages = {
  jigRun: command('JIG', 'jig.run', 1, jigJob, jobExample),
  runFinished: command(
    'ANNEALER',
    'annealer.run_finished',
    1,
    z.object({
      runId: id,
      token: z.string().min(1).max(200),
      /** The `run.begin` attempt this result is from; a result of an attempt superseded by a later one does not count. Left out by jigs that have no begin (noop). */
      attempt: z.number().int().positive().optional(),
      ok: z.boolean(),
      wall: blob.nullable(),
      runlog: z.string().max(1_000_000),
    }),
    {
      runId: 11,
      token: 'r11-3f2a',
      ok: true,
      wall: { test: { written: 'hello' } },
      runlog: '+ write_attribute test/ok true',
    },
  ),
  /** Re-run an ACTIVE noderole in the high-priority lane (the original's Run.enqueue). */
  enqueue: command(
    'ANNEALER',
    'annealer.enqueue',
    1,
    z.object({ noderoleId: id, reason: z.string().max(500).default('') }),
    {
      noderoleId: 7,
      reason: 'dhcp database changed',
    },
  ),
  /** A jig runner asks before it touches the node; a destructive run interrupted once is not started again. */
  beginRun: rpc(
    'annealer',
    'run.begin',
    1,
    z.object({ runId: id, token: z.string().min(1).max(200), runner: z.string().max(200) }),
    z.object({ proceed: z.boolean(), reason: z.string(), attempt: z.number().int().nonnegative() }),
    {
      request: { runId: 11, token: 'r11-3f2a', runner: 'jig-runner-1' },
      response: { proceed: true, reason: 'first attempt', attempt: 1 },
    },
  ),
  runFinishedEvent: event(
    'run.finished',
    1,
    z.object({
      runId: id,
      noderoleId: id,
      node: z.string(),
      role: z.string(),
      outcome: z.enum(['active', 'error', 'requeued', 'skipped', 'stale']),
      durationMs: z.number().nonnegative(),
    }),
    {
      runId: 11,
      noderoleId: 7,
      node: 'n1.cluster.example.com',
      role: 'test-writer',
      outcome: 'active',
      durationMs: 812,
    },
  ),
  runs: rpc(
    'annealer',
    'run.list',
    1,
    z.object({
      active: z.boolean().default(true),
      /** Newest first, at most `limit` (default 500, at most 1000), older than `cursor` (a page's `next`). */
      limit: z
        .number()
        .int()
        .min(1, 'must be from 1 to 1000')
        .max(1000, 'must be from 1 to 1000')
        .default(500),
      cursor: z
        .string()
        .regex(/^\d{1,15}$/, "must be the `next` of a previous page's answer")
        .optional(),
    }),
    z.object({
      /** The cursor of the next (older) page; null on the last. */
      next: z.string().nullable().default(null),
      runs: z.array(
        z.object({
          id,
          noderoleId: id,
          nodeId: id,
          role: z.string().nullable(),
          lane: z.string(),
          state: z.string(),
          /** How the run ended (the noderole's state, or `skipped: …` when its jig was skipped). */
          reason: z.string().nullable().default(null),
          createdAt: z.string(),
        }),
      ),
    }),
    { request: { active: true, limit: 100 }, response: { runs: [], next: null } },
  ),
};

const day = 24 * 3600 * 1000;
export const annealerStreams: StreamDecl[] = [
  { name: 'JIG', subjects: ['cmd.jig.>'], retention: 'workqueue', maxAgeMs: day, duplicateWindowMs: 120_000 },
  {
    name: 'ANNEALER',
    subjects: ['cmd.annealer.>'],
    retention: 'workqueue',
    maxAgeMs: day,
    duplicateWindowMs: 120_000,
  },
];
