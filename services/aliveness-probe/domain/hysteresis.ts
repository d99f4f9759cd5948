import type { ProbeVerdict } from '../../../shared/catalogue/index.js';

/**
 * Hysteresis against flapping: `failuresToDead` consecutive failed probes make a node dead, one passed
 * probe makes it alive again. Written as a table from (verdict, sample) to the next verdict so every
 * case is visible at once; `reached` says the failure count has hit the threshold.
 */
export type Sample = 'ok' | 'fail';

export interface HysteresisState {
  verdict: ProbeVerdict;
  failures: number;
  /** `ok`, or the reason of the last failure. */
  reason: string;
}

type Rule = (reached: boolean) => ProbeVerdict;

export const transitions: Record<ProbeVerdict, Record<Sample, Rule>> = {
  unknown: { ok: () => 'alive', fail: (reached) => (reached ? 'dead' : 'unknown') },
  alive: { ok: () => 'alive', fail: (reached) => (reached ? 'dead' : 'suspect') },
  suspect: { ok: () => 'alive', fail: (reached) => (reached ? 'dead' : 'suspect') },
  dead: { ok: () => 'alive', fail: () => 'dead' },
};

export interface Step {
  next: HysteresisState;
  changed: boolean;
}

/** Applies one probe result. Pure: the caller stores the state, logs and emits on `changed`. */
export function step(state: HysteresisState, sample: Sample, reason: string, failuresToDead: number): Step {
  const failures = sample === 'ok' ? 0 : state.failures + 1;
  const verdict = transitions[state.verdict][sample](failures >= failuresToDead);
  const next = { verdict, failures, reason: sample === 'ok' ? 'ok' : reason };
  return { next, changed: verdict !== state.verdict };
}

/** The aliveness a verdict stands for, or null while it is not decided (unknown, suspect). */
export function decided(verdict: ProbeVerdict): boolean | null {
  if (verdict === 'alive') return true;
  if (verdict === 'dead') return false;
  return null;
}

export interface ReportInput {
  verdict: ProbeVerdict;
  /** Inventory's flags as projected. */
  alive: boolean;
  available: boolean;
  system: boolean;
  holdUntil: Date | null;
  now: Date;
}

/**
 * Whether to tell inventory, level-triggered: a decided verdict that differs from inventory's flag.
 * Unavailable nodes are probed for the health view but never toggled (reference §4.3); system nodes
 * always count as alive (reference §4.1); after someone else changed the flag (a node's self-report),
 * the probe holds off for one detection window so the two do not fight.
 */
export function reportFor(i: ReportInput): boolean | null {
  const want = decided(i.verdict);
  if (want === null || want === i.alive) return null;
  if (!i.available || i.system) return null;
  if (i.holdUntil && i.holdUntil > i.now) return null;
  return want;
}
