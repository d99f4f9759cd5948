import { describe, expect, it } from 'vitest';
import type { ProbeVerdict } from '../../../shared/catalogue/index.js';
import { type HysteresisState, reportFor, type Sample, step } from './hysteresis.js';

const s = (verdict: ProbeVerdict, failures = 0, reason = 'ok'): HysteresisState => ({
  verdict,
  failures,
  reason,
});

describe('hysteresis table (3 failures to dead)', () => {
  const cases: [HysteresisState, Sample, ProbeVerdict, number, boolean][] = [
    // state, sample, next verdict, next failures, changed
    [s('unknown'), 'ok', 'alive', 0, true],
    [s('unknown'), 'fail', 'unknown', 1, false],
    [s('unknown', 2), 'fail', 'dead', 3, true],
    [s('alive'), 'ok', 'alive', 0, false],
    [s('alive'), 'fail', 'suspect', 1, true],
    [s('suspect', 1), 'fail', 'suspect', 2, false],
    [s('suspect', 2), 'fail', 'dead', 3, true],
    [s('suspect', 2), 'ok', 'alive', 0, true],
    [s('dead', 3), 'fail', 'dead', 4, false],
    [s('dead', 9), 'ok', 'alive', 0, true],
  ];
  it.each(cases)('%j + %s -> %s', (state, sample, verdict, failures, changed) => {
    const r = step(state, sample, 'connection refused', 3);
    expect(r.next).toEqual({ verdict, failures, reason: sample === 'ok' ? 'ok' : 'connection refused' });
    expect(r.changed).toBe(changed);
  });

  it('a threshold of one makes the first failure fatal', () => {
    expect(step(s('alive'), 'fail', 'icmp timeout', 1).next.verdict).toBe('dead');
  });

  it('one lost probe in between never flips the node (alternating samples)', () => {
    let st = s('alive');
    let changes = 0;
    for (let i = 0; i < 100; i++) {
      const r = step(st, i % 2 ? 'ok' : 'fail', 'icmp timeout', 3);
      if (r.changed && (r.next.verdict === 'dead' || st.verdict === 'dead')) changes++;
      st = r.next;
    }
    expect(changes).toBe(0);
  });
});

describe('reporting to inventory', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  const base = { alive: true, available: true, system: false, holdUntil: null, now };
  const cases: [string, Parameters<typeof reportFor>[0], boolean | null][] = [
    ['dead verdict on an alive node', { ...base, verdict: 'dead' }, false],
    ['alive verdict on a dead node', { ...base, verdict: 'alive', alive: false }, true],
    ['agreement', { ...base, verdict: 'alive' }, null],
    ['suspect is not decided', { ...base, verdict: 'suspect' }, null],
    ['unknown is not decided', { ...base, verdict: 'unknown', alive: false }, null],
    ['unavailable node is never toggled', { ...base, verdict: 'dead', available: false }, null],
    ['system node always counts as alive', { ...base, verdict: 'dead', system: true }, null],
    ['hold after a self-report', { ...base, verdict: 'dead', holdUntil: new Date(now.getTime() + 1) }, null],
    ['hold expired', { ...base, verdict: 'dead', holdUntil: new Date(now.getTime() - 1) }, false],
  ];
  it.each(cases)('%s', (_name, input, want) => {
    expect(reportFor(input)).toBe(want);
  });
});
