import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FaultRig,
  isStopped,
  logged,
  markerLines,
  sawRun,
  startFaultRig,
  waitLogged,
} from './helpers/faults.js';
import { until } from './helpers/inventory.js';
import type { ServiceProcess } from './helpers/process.js';

// Plan T2(b): the runner of a run is stopped (SIGSTOP) mid-script for longer than the ack wait, so
// JetStream hands the job to the other runner; then it is woken up (SIGCONT). The script must have run
// exactly once — for a destructive role and for an ordinary one — and the run must count once.
const ackWaitMs = 2000;
let rig: FaultRig;
let runners: ServiceProcess[];

beforeAll(async () => {
  rig = await startFaultRig(['inventory', 'annealer', 'gateway']);
  const env = { CROWBAR_JIG_ACK_WAIT_MS: String(ackWaitMs) };
  runners = await Promise.all([rig.spawn('jig-runner', env), rig.spawn('jig-runner', env)]);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
});

async function stoppedMidRun(name: string, role: string, attrib: string) {
  const marker = `${rig.dir}/${name}`;
  const { node, noderole } = await rig.nodeWith(`${name}.faults.crowbar.test`, role, {
    [`${attrib}marker`]: marker,
    [`${attrib}sleep`]: 2,
  });
  await rig.s.call('PUT', `/nodes/${node}/commit`);
  await until('script started', () => markerLines(marker) === 1, 30_000);
  const { rows } = await rig.db.query<{ run_id: number; runner: string }>(
    'select run_id, runner from jig_runner.runlogs where noderole_id = $1',
    [noderole],
  );
  const runId = rows[0]!.run_id;
  const first = runners.find((r) => logged(r, 'run started', { run: runId }).length > 0)!;
  const other = runners.find((r) => r !== first)!;
  first.kill('SIGSTOP');
  try {
    await until('runner stopped', () => isStopped(first.pid), 5000);
    // Stopped past the ack wait: the job goes to the other runner (which must wait, not run it).
    await until('the job redelivered to the other runner', () => sawRun(other, runId), 20_000);
    // The fault's length: three more ack waits, well past the script's own end on the node.
    await new Promise((r) => setTimeout(r, 3 * ackWaitMs));
    expect((await rig.noderole(noderole)).state).toBe('transition');
  } finally {
    first.kill('SIGCONT');
  }
  await until('runner running again', () => !isStopped(first.pid), 5000);
  const settled = (await until(
    'noderole settled',
    async () => {
      const nr = await rig.noderole(noderole);
      return nr.state === 'transition' || nr.state === 'todo' ? null : nr;
    },
    60_000,
  ))!;
  return { marker, runId, settled, first, other };
}

/** The other runner waited for the stopped one, then was fenced once the woken runner's result counted. */
async function fencedAfterWaiting(other: ServiceProcess, first: ServiceProcess, runId: number) {
  expect(logged(other, 'run held by another runner; waiting for it', { run: runId })).toHaveLength(1);
  const fenced = await waitLogged(other, 'run fenced: already run by a runner', { run: runId }, 20_000);
  expect(String(fenced.by)).toBe(String(logged(first, 'run started', { run: runId })[0]?.instance));
  expect(logged(other, 'run started', { run: runId })).toHaveLength(0);
}

describe('SIGSTOP of a runner mid-run, past the ack wait, then SIGCONT', () => {
  it('destructive role: the script ran once and the run counts (ACTIVE, not failed as interrupted)', async () => {
    const { marker, settled, first, other, runId } = await stoppedMidRun(
      'stop-destructive',
      'test-destructive',
      'test-destructive_',
    );
    expect(markerLines(marker)).toBe(1);
    expect(settled.state).toBe('active');
    expect(settled.runCount).toBe(1);
    await fencedAfterWaiting(other, first, runId);
  }, 90_000);

  it('ordinary role: the script ran once, not again on the other runner', async () => {
    const { marker, settled, first, other, runId } = await stoppedMidRun(
      'stop-ordinary',
      'test-writer',
      'test-',
    );
    expect(markerLines(marker)).toBe(1);
    expect(settled.state).toBe('active');
    expect(settled.runCount).toBe(1);
    await fencedAfterWaiting(other, first, runId);
    const logs = await rig.db.query('select count(*)::int as n from jig_runner.runlogs where run_id = $1', [
      runId,
    ]);
    expect(logs.rows[0].n).toBe(1);
  }, 90_000);
});
