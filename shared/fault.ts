import { z } from 'zod';
import type { Logger } from './log.js';

/**
 * Declared fault-injection points for the reliability tests (`test/faults-*.test.ts`, `npm run bench --
 * faults`). Unset, `CROWBAR_FAULT_AT` makes every point a no-op; set, the process stops at the named
 * point the first time it reaches it — logs `fault point reached` and waits `CROWBAR_FAULT_HOLD_MS`
 * there — so a test can `kill -9` or SIGSTOP it at exactly that place, then goes on as usual.
 */
export const faultPoints = [
  /** In the outbox relay: the rows are committed and read, nothing is published yet. */
  'outbox-before-publish',
  /** In the outbox relay: published, not yet deleted (a restart publishes them again). */
  'outbox-after-publish',
  /** In the annealer: inside the claim transaction, holding the cap lock. */
  'annealer-cap-lock',
  /** In aliveness-probe: leading the sweeps (the leader lock held), before a sweep. */
  'prober-lock',
] as const;
export type FaultPoint = (typeof faultPoints)[number];

export const faultConfig = {
  CROWBAR_FAULT_AT: z.enum(faultPoints).optional(),
  /** Only stop where one of the point's `subjects` contains this (e.g. `jig.run`). */
  CROWBAR_FAULT_MATCH: z.string().min(1).optional(),
  CROWBAR_FAULT_HOLD_MS: z.coerce
    .number({ message: 'must be an integer from 0 to 3600000' })
    .int('must be an integer from 0 to 3600000')
    .min(0, 'must be an integer from 0 to 3600000')
    .max(3_600_000, 'must be an integer from 0 to 3600000')
    .default(600_000),
};

/** Where a component may be stopped; `at` resolves at once unless the point is the configured one. */
export interface Faults {
  at(point: FaultPoint, detail?: Record<string, unknown>): Promise<void>;
}

export const noFaults: Faults = { at: async () => undefined };

export function createFaults(
  config: {
    CROWBAR_FAULT_AT?: FaultPoint | undefined;
    CROWBAR_FAULT_MATCH?: string | undefined;
    CROWBAR_FAULT_HOLD_MS: number;
  },
  log: Logger,
): Faults {
  const point = config.CROWBAR_FAULT_AT;
  if (!point) return noFaults;
  log.warn({ fault: point, match: config.CROWBAR_FAULT_MATCH }, 'fault injection armed (test only)');
  let fired = false;
  return {
    async at(p, detail = {}) {
      if (p !== point || fired) return;
      const match = config.CROWBAR_FAULT_MATCH;
      const subjects = Array.isArray(detail.subjects) ? (detail.subjects as string[]) : [];
      if (match && !subjects.some((s) => s.includes(match))) return;
      fired = true;
      const { subjects: _, ...shown } = detail;
      log.warn({ fault: p, holdMs: config.CROWBAR_FAULT_HOLD_MS, ...shown }, 'fault point reached');
      await new Promise((r) => setTimeout(r, config.CROWBAR_FAULT_HOLD_MS));
      log.warn({ fault: p }, 'fault point released');
    },
  };
}
