import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultRig, logged, markerLines, sawRun, startFaultRig, waitLogged } from './helpers/faults.js';
import { until } from './helpers/inventory.js';
import type { ServiceProcess } from './helpers/process.js';

// Plan T3: a job that lasts three ack waits, with two runners alive. With keep-alives it is delivered
// once and runs once; without them JetStream hands it to the other runner mid-run, which must not run it.
const ackWaitMs = 2000;
let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig(['inventory', 'annealer', 'gateway']);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
});

/** Two runners with one job slot each, so a redelivery cannot join the first runner's own copy. */
async function twoRunners(keepAlive: boolean): Promise<ServiceProcess[]> {
  const env = {
    CROWBAR_JIG_ACK_WAIT_MS: String(ackWaitMs),
    CROWBAR_JIG_KEEPALIVE: String(keepAlive),
  };
  return Promise.all([rig.spawn('jig-runner', env), rig.spawn('jig-runner', env)]);
}

async function longRun(name: string) {
  const marker = `${rig.dir}/${name}`;
  const { node, noderole } = await rig.nodeWith(`${name}.faults.crowbar.test`, 'test-writer', {
    'test-marker': marker,
    'test-sleep': (3 * ackWaitMs) / 1000,
  });
  await rig.s.call('PUT', `/nodes/${node}/commit`);
  await until('noderole active', async () => (await rig.noderole(noderole)).state === 'active', 60_000);
  const logs = await rig.db.query<{ run_id: number; runner: string; ok: boolean }>(
    'select run_id, runner, ok from jig_runner.runlogs where noderole_id = $1',
    [noderole],
  );
  return { marker, noderole, logs: logs.rows };
}

describe('a job three ack waits long, two runners alive', () => {
  it('with keep-alives: delivered once, run once, one run log', async () => {
    const runners = await twoRunners(true);
    const { marker, logs } = await longRun('keepalive-on');
    expect(markerLines(marker)).toBe(1);
    expect(logs).toHaveLength(1);
    expect(logs[0]!.ok).toBe(true);
    const runId = logs[0]!.run_id;
    // Nobody saw the job a second time: no runner waited for it, none fenced it.
    for (const r of runners) {
      expect(logged(r, 'run held by another runner; waiting for it', { run: runId })).toHaveLength(0);
      expect(logged(r, 'run started', { run: runId }).length).toBeLessThanOrEqual(1);
    }
    for (const r of runners) await r.stop();
  }, 90_000);

  it('without keep-alives: the redelivery goes to the other runner, which is fenced and does not run it', async () => {
    const runners = await twoRunners(false);
    const { marker, noderole, logs } = await longRun('keepalive-off');
    expect(markerLines(marker)).toBe(1);
    expect(logs).toHaveLength(1);
    expect(runners.every((r) => sawRun(r, logs[0]!.run_id))).toBe(true);
    const runId = logs[0]!.run_id;
    const first = runners.find((r) => logged(r, 'run started', { run: runId }).length > 0)!;
    const second = runners.find((r) => r !== first)!;
    // The positive signal that the redelivery happened: the second runner got the job mid-run,
    // waited for the first, and was fenced when it finished.
    const fenced = await waitLogged(second, 'run fenced: already run by a runner', { run: runId }, 10_000);
    expect(fenced.by).toBe(logs[0]!.runner);
    expect(logged(second, 'run held by another runner; waiting for it', { run: runId })).toHaveLength(1);
    expect(logged(second, 'run started', { run: runId })).toHaveLength(0);
    expect((await rig.noderole(noderole)).runCount).toBe(1);
  }, 90_000);
});
