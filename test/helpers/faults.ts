import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { DeliverPolicy } from '@nats-io/jetstream';
import pg from 'pg';
import { coreBarclampDir, testBarclampDir } from '../../services/inventory/service.js';
import type { Bus } from '../../shared/bus/bus.js';
import { streamName } from '../../shared/bus/streams.js';
import type { ServiceName } from '../../shared/catalogue/index.js';
import { generateKeyPair } from '../../shared/ssh/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './env.js';
import { until } from './inventory.js';
import { type ServiceProcess, spawnService } from './process.js';
import { startSshd, type TestSshd } from './sshd.js';
import { type Stack, startStack } from './stack.js';

/**
 * The rig of the fault tests (`test/faults-*.test.ts`, `bench/faults.ts`): a fresh database and bus
 * prefix, a real sshd the script roles run against, the services named in `inProcess` in this process,
 * and whatever the test spawns as processes of their own (the ones it kills or stops).
 */
export interface FaultRig {
  t: TestEnv;
  s: Stack;
  sshd: TestSshd;
  bus: Bus;
  db: pg.Client;
  dir: string;
  /** Environment for a spawned service: the file's database and prefix, the cluster key, test speed. */
  env: Record<string, string>;
  spawn(name: ServiceName, extra?: Record<string, string>): Promise<ServiceProcess>;
  /** A node that answers SSH (the rig's sshd) with `role` bound and its attribs set; not committed. */
  nodeWith(
    name: string,
    role: string,
    attribs?: Record<string, unknown>,
  ): Promise<{ node: number; noderole: number }>;
  noderole(id: number): Promise<{ state: string; runlog: string; runCount: number }>;
  stop(): Promise<void>;
}

export async function startFaultRig(
  inProcess: ServiceName[],
  extraEnv: Record<string, string> = {},
  urls?: { pgAdminUrl: string; natsUrl: string },
): Promise<FaultRig> {
  const dir = mkdtempSync(`${tmpdir()}/crowbar-faults-`);
  const keys = generateKeyPair('crowbar-test');
  writeFileSync(`${dir}/cluster_key`, keys.privateKey, { mode: 0o600 });
  const procs: ServiceProcess[] = [];
  let sshd: TestSshd | undefined;
  let t: TestEnv | undefined;
  let s: Stack | undefined;
  let bus: Bus | undefined;
  let db: pg.Client | undefined;
  const stop = async () => {
    for (const p of procs) {
      p.kill('SIGCONT');
      await p.stop();
    }
    await db?.end().catch(() => undefined);
    await bus?.close();
    await s?.stop();
    await t?.cleanup();
    await sshd?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sshd = await startSshd({ authorizedKeys: [keys.publicKey] });
    t = await createTestEnv(urls);
    const env = {
      ...t.env,
      CROWBAR_SSH_KEY: `${dir}/cluster_key`,
      CROWBAR_PROBE_AFTER_RUN: 'false',
      CROWBAR_ANNEAL_PASS_MS: '100',
      ...extraEnv,
    };
    s = await startStack(t, inProcess, env);
    bus = await connectTestBus(t);
    db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    const rig: FaultRig = {
      t,
      s,
      sshd,
      bus,
      db,
      dir,
      env,
      async spawn(name, extra = {}) {
        const p = await spawnService(name, {
          ...env,
          CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
          CROWBAR_ADMIN_NODE: 'false',
          ...extra,
        });
        procs.push(p);
        return p;
      },
      async nodeWith(name, role, attribs = {}) {
        const n = await s!.call('POST', '/nodes', {
          name,
          alive: true,
          sshHostKey: sshd!.hostKey,
          hint: { ssh: { host: sshd!.host, port: sshd!.port } },
        });
        if (n.status !== 201 && n.status !== 200) throw new Error(`node ${name}: ${JSON.stringify(n.body)}`);
        const nr = await s!.call('POST', '/node_roles', { node: n.body.id, role });
        for (const [a, value] of Object.entries(attribs)) {
          const r = await s!.call('PUT', `/node_roles/${nr.body.id}/attribs/${a}`, { value });
          if (r.status !== 200) throw new Error(`attrib ${a}: ${JSON.stringify(r.body)}`);
        }
        return { node: n.body.id as number, noderole: nr.body.id as number };
      },
      async noderole(id) {
        return (await s!.call('GET', `/node_roles/${id}`)).body;
      },
      stop,
    };
    return rig;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Lines in a marker file a test script appends to (0 if it does not exist yet). */
export const markerLines = (f: string) =>
  existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).length : 0;

/** Log lines (parsed pino JSON) of a spawned service whose `msg` is `msg` and that match `where`. */
export function logged(
  p: ServiceProcess,
  msg: string,
  where: Record<string, unknown> = {},
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of p.lines) {
    if (!l.includes(msg)) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(l);
    } catch {
      continue;
    }
    if (j.msg === msg && Object.entries(where).every(([k, v]) => j[k] === v)) out.push(j);
  }
  return out;
}

/** Whether a spawned service logged anything about run `runId` (it got the job). */
export const sawRun = (p: ServiceProcess, runId: number) =>
  p.lines.some((l) => l.includes(`"run":${runId},`) || l.includes(`"run":${runId}}`));

export const waitLogged = (
  p: ServiceProcess,
  msg: string,
  where: Record<string, unknown> = {},
  ms = 30_000,
): Promise<Record<string, unknown>> =>
  until(
    `"${msg}" ${JSON.stringify(where)} in ${p.pid}'s log`,
    () => logged(p, msg, where)[0] as Record<string, unknown>,
    ms,
  );

/** Whether the kernel has the process stopped (state T), read from /proc. */
export const isStopped = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') ?? false;
  } catch {
    return false;
  }
};

/** One event as an external JetStream subscriber sees it. */
export interface SeenEvent {
  seq: number;
  id: string;
  type: string;
  data: any;
}

/**
 * An external subscriber: an ordered JetStream consumer on the EVENTS stream from its first message,
 * for the events under `evt.<pattern>` (e.g. `noderole.>`), collected in stream order.
 */
export async function collectEvents(bus: Bus, pattern: string) {
  const events: SeenEvent[] = [];
  const consumer = await bus.js.consumers.get(streamName(bus.prefix, 'EVENTS'), {
    filter_subjects: `${bus.prefix}.evt.${pattern}`,
    deliver_policy: DeliverPolicy.All,
  });
  const messages = await consumer.consume({
    callback: (m) => {
      const env = JSON.parse(new TextDecoder().decode(m.data));
      events.push({ seq: m.seq, id: env.id, type: env.type, data: env.data });
    },
  });
  return { events, stop: () => messages.close().then(() => undefined) };
}

/** Envelope ids seen more than once. */
export const duplicateIds = (events: SeenEvent[]) => {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const e of events) {
    if (seen.has(e.id)) dups.push(e.id);
    seen.add(e.id);
  }
  return dups;
};

/**
 * The work an outbox fault test kills a service in the middle of: three alive nodes named after `tag`,
 * each with `test-top` bound, then all committed. Answers their ids.
 */
export async function commitTopNodes(rig: FaultRig, tag: string): Promise<number[]> {
  const nodes: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const n = await rig.s.call('POST', '/nodes', { name: `${tag}${i}.faults.crowbar.test`, alive: true });
    const bound = await rig.s.call('POST', '/node_roles', { node: n.body.id, role: 'test-top' });
    if (bound.status !== 201)
      throw new Error(`binding test-top: ${bound.status} ${JSON.stringify(bound.body)}`);
    nodes.push(n.body.id);
  }
  for (const n of nodes) await rig.s.call('PUT', `/nodes/${n}/commit`);
  return nodes;
}

/** Waits until `victim` logs that it reached fault point `point`, then kills it with -9 and waits for its end. */
export async function killAtFaultPoint(victim: ServiceProcess, point: string): Promise<void> {
  await waitLogged(victim, 'fault point reached', { fault: point }, 30_000);
  victim.kill('SIGKILL');
  await victim.exited;
}

/** The ids of the noderoles on `nodes`, straight from inventory's table. */
export async function noderolesOf(rig: FaultRig, nodes: number[]): Promise<number[]> {
  const { rows } = await rig.db.query<{ id: number }>(
    'select id from inventory.noderoles where node_id = any($1)',
    [nodes],
  );
  return rows.map((r) => r.id);
}
