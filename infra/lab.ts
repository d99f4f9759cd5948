/**
 * `npm run lab -- --nodes N` (root): a simulated data centre on this machine (DESIGN §7). Starts the
 * control plane as `npm start` does (its own state dir, `.lab-state/`), with the admin network on a lab
 * bridge, boots N lightweight nodes (infra/lab/) and prints their progress, the gateway URL and the
 * operator token; runs until Ctrl-C, which removes everything it made. `--until discovered|installed`
 * exits 0 once every node got there, non-zero naming those that did not. `npm run lab -- fault <node>
 * <fault>` in another shell reaches the running lab through its state dir.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { faultRequest, sendFault, serveControl } from './lab/control.js';
import { createLab, type Lab } from './lab/fleet.js';
import { hostAt, parseLabCidr } from './lab/network.js';
import { apiClient, fleetStatus, type NodeStatus, summary } from './lab/progress.js';
import { killPid, processId, run, stillRuns } from './lab/shell.js';
import { pickPort } from './ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`[lab] ${line}\n`);
const usage = `usage: npm run lab -- [--nodes N] [--until discovered|installed] [--timeout S] [--auto-commit]
                      [--name lab] [--cidr 198.18.124.0/22] [--state-dir .lab-state] [--logs]
       npm run lab -- fault <node> link-down|loss <percent>|sshd-stop|reboot|power-off|power-on|clear`;

interface LabRecord {
  name: string;
  owner: string | null;
  launcher: string | null;
  socket: string;
  nodes: { label: string; mac: string; serial: string }[];
}

const [first, ...rest] = process.argv.slice(2);
if (first === 'fault') await fault(rest);
else await runLab(process.argv.slice(2));

/** `fault <node> <kind> [percent]`: one request to the running lab's control socket. */
async function fault(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'state-dir': { type: 'string' } },
  });
  const stateDir = resolve(values['state-dir'] ?? `${root}.lab-state`);
  const [node, kind, pct] = positionals;
  const parsed = faultRequest.safeParse({
    node,
    fault: kind,
    ...(kind === 'loss' ? { percent: Number(pct) } : {}),
  });
  if (!parsed.success) {
    console.error(usage);
    process.exit(2);
  }
  const record = await readRecord(stateDir);
  if (!record || !stillRuns(record.owner)) {
    console.error(`[lab] no lab is running on ${stateDir} (start one with npm run lab)`);
    process.exit(1);
  }
  try {
    say(await sendFault(record.socket, parsed.data));
  } catch (e) {
    console.error(`[lab] ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}

async function readRecord(stateDir: string): Promise<LabRecord | null> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'lab.json'), 'utf8')) as LabRecord;
  } catch {
    return null;
  }
}

async function runLab(args: string[]) {
  let parsedArgs: ReturnType<typeof parse>;
  try {
    parsedArgs = parse(args);
  } catch (e) {
    console.error(`[lab] ${e instanceof Error ? e.message : String(e)}\n${usage}`);
    process.exit(2);
  }
  const opts = parsedArgs;
  if (process.getuid?.() !== 0) {
    console.error(
      '[lab] the lab needs root (network namespaces, a bridge, DHCP on port 67): run it with sudo',
    );
    process.exit(1);
  }
  const { stateDir, name, cidr } = opts;
  const { network, prefix } = parseLabCidr(cidr);
  // The admin node's address: the first of the admin network's `admin` range (offset 10).
  const adminAddress = hostAt(network, 10);
  await mkdir(stateDir, { recursive: true });

  const previous = await readRecord(stateDir);
  if (previous && stillRuns(previous.owner)) {
    console.error(`[lab] a lab already runs on ${stateDir} (process ${previous.owner?.split(':')[0]})`);
    process.exit(1);
  }
  if (previous?.launcher && stillRuns(previous.launcher)) {
    const pid = Number(previous.launcher.split(':')[0]);
    say(`stopping the control plane a killed lab left (process ${pid})`);
    killPid(pid, 'SIGTERM');
    for (let i = 0; i < 400 && stillRuns(previous.launcher); i++)
      await new Promise((r) => setTimeout(r, 100));
    killPid(pid);
  }
  // What that control plane may still have running (its nats-server and PostgreSQL), by their pid files.
  await stopByPidFile(join(stateDir, 'nats', 'nats-server.pid'));
  await stopByPidFile(join(stateDir, 'postgres', 'postmaster.pid'));
  // A fresh data centre every run; the secrets (operator token, cluster key) are kept.
  for (const d of ['postgres', 'nats', 'logs', 'boot', 'lab', 'lab.json'])
    await rm(join(stateDir, d), { recursive: true, force: true });

  let lab: Lab | null = null;
  let launcher: ChildProcess | null = null;
  let control: { close(): Promise<void> } | null = null;
  let stopping = false;
  const record: LabRecord = {
    name,
    owner: processId(process.pid),
    launcher: null,
    socket: join(stateDir, 'lab', 'control.sock'),
    nodes: [],
  };
  const saveRecord = () => writeFile(join(stateDir, 'lab.json'), `${JSON.stringify(record, null, 2)}\n`);

  const shutdown = async (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    say(`stopping (${why}) …`);
    await control?.close().catch(() => undefined);
    if (lab) await lab.stop().catch((e: unknown) => say(`removing the lab failed: ${String(e)}`));
    const l = launcher;
    if (l && l.exitCode === null && l.signalCode === null) {
      const exited = new Promise((r) => l.once('exit', r));
      l.kill('SIGTERM');
      const timer = setTimeout(() => l.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(join(stateDir, 'lab.json'), { force: true });
    say('stopped; namespaces, bridge, veths and processes removed');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(130, 'SIGINT'));
  process.on('SIGTERM', () => void shutdown(143, 'SIGTERM'));
  process.on('SIGHUP', () => void shutdown(129, 'SIGHUP'));

  try {
    say(`lab ${name}: bridge with ${adminAddress}/${prefix}, state dir ${stateDir}`);
    lab = await createLab({
      name,
      dir: join(stateDir, 'lab'),
      address: `${adminAddress}/${prefix}`,
      log: say,
    });
    await saveRecord();
    const theLab = lab;
    control = await serveControl(record.socket, theLab, say);

    const port = await pickPort(3000);
    const env = {
      ...process.env,
      CROWBAR_ADMIN_CIDR: cidr,
      CROWBAR_DHCP_INTERFACES: theLab.bridge.name,
      CROWBAR_HTTP_PORT: String(port),
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(8091)),
      CROWBAR_DNS_SERVERS: adminAddress,
    };
    const l = spawn(
      process.execPath,
      [
        join(root, 'infra/bootstrap.mjs'),
        'launcher.ts',
        '--state-dir',
        stateDir,
        ...(opts.logs ? ['--logs'] : []),
      ],
      { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    launcher = l;
    l.stdout?.on('data', (b: Buffer) => process.stdout.write(b));
    l.stderr?.on('data', (b: Buffer) => process.stderr.write(b));
    l.once('exit', (code, signal) => {
      if (!stopping) void shutdown(1, `the control plane exited (${signal ?? `code ${code}`})`);
    });
    record.launcher = l.pid ? processId(l.pid) : null;
    await saveRecord();

    const base = `http://127.0.0.1:${port}/api/v2`;
    await waitHealthy(base, 600_000);
    const token = (await readFile(join(stateDir, 'operator-token'), 'utf8')).trim();
    const api = apiClient(base, token);
    await waitReady(api, 120_000);
    await fitDhcpRange(api, network, prefix, opts.nodes);

    const started = Date.now();
    const nodes = await theLab.addNodes(opts.nodes);
    record.nodes = nodes.map((n) => ({ label: n.spec.label, mac: n.spec.mac, serial: n.spec.serial }));
    await saveRecord();
    for (const n of nodes) await n.powerOn();
    say(
      `${nodes.length} nodes powered on (MACs ${nodes[0]?.spec.mac} …); consoles in ${join(stateDir, 'lab', 'nodes')}`,
    );
    say(`gateway: http://127.0.0.1:${port}/  operator token: ${token}`);
    say('faults from another shell: npm run lab -- fault n1 sshd-stop   (… fault n1 clear)');

    const goal = opts.until;
    const deadline = started + opts.timeout * 1000;
    const committed = new Set<number>();
    const bound = new Set<number>();
    let last = '';
    let status: NodeStatus[] = [];
    let peakMemory = 0;
    for (;;) {
      if (stopping) return;
      try {
        status = await fleetStatus(api, theLab);
      } catch (e) {
        say(`status not available: ${e instanceof Error ? e.message : String(e)}`);
      }
      const line = summary(status);
      if (line !== last) {
        say(`${((Date.now() - started) / 1000).toFixed(1)} s: ${line}`);
        last = line;
        peakMemory = Math.max(peakMemory, await nodeMemoryMb(theLab));
      }
      if (opts.autoCommit || goal === 'installed')
        for (const s of status)
          if (s.id !== undefined && s.available === false && !committed.has(s.id)) {
            const r = await api.call('PUT', `/nodes/${s.id}/commit`);
            if (r.status === 200) committed.add(s.id);
          }
      if (goal === 'installed') await bindInstalls(api, status, bound);
      const done = goal ? status.filter((s) => reached(s, goal)) : [];
      if (goal && done.length === status.length && status.length > 0) {
        const seconds = (Date.now() - started) / 1000;
        const memory = Math.max(peakMemory, await nodeMemoryMb(theLab));
        say(`all ${status.length} nodes ${goal} in ${seconds.toFixed(1)} s`);
        say(
          `result ${JSON.stringify({
            until: goal,
            nodes: status.length,
            seconds: Math.round(seconds * 10) / 10,
            memoryPerNodeMb: Math.round((memory / status.length) * 10) / 10,
            load: loadavg().map((x) => Math.round(x * 100) / 100),
          })}`,
        );
        return await shutdown(0, `every node ${goal}`);
      }
      if (goal && Date.now() > deadline) {
        const missing = status.filter((s) => !reached(s, goal));
        say(
          `timed out after ${opts.timeout} s: ${missing.length} node(s) not ${goal}: ${missing
            .map(
              (s) =>
                `${s.label} ${s.name ?? s.mac} (${s.stage}${s.alive === false ? ', not alive' : ''}${s.waiting?.length ? `; ${s.waiting.join(' ')}` : ''})`,
            )
            .join(', ')}`,
        );
        return await shutdown(1, 'timeout');
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (e) {
    say(`failed: ${e instanceof Error ? e.message : String(e)}`);
    await shutdown(1, 'failure');
  }
}

/** Stops the process named by the first line of a pid file (when it still runs), bounded to 20 s. */
async function stopByPidFile(file: string) {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 1) return;
  const id = processId(pid);
  // Only a process of this state dir (a reused PID is someone else's).
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
  if (!id || !(cmdline + environ).includes(file.slice(0, file.lastIndexOf('/')))) return;
  say(`stopping process ${pid} left by a killed lab (${file})`);
  killPid(pid, 'SIGTERM');
  for (let i = 0; i < 200 && stillRuns(id); i++) await new Promise((r) => setTimeout(r, 100));
  killPid(pid);
}

function reached(s: NodeStatus, goal: 'discovered' | 'installed'): boolean {
  return goal === 'installed' ? s.stage === 'installed' : s.stage === 'discovered' || s.stage === 'installed';
}

function parse(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '3' },
      vms: { type: 'string', default: '0' },
      name: { type: 'string', default: 'lab' },
      cidr: { type: 'string', default: '198.18.124.0/22' },
      'state-dir': { type: 'string' },
      until: { type: 'string' },
      timeout: { type: 'string', default: '600' },
      'auto-commit': { type: 'boolean', default: false },
      logs: { type: 'boolean', default: false },
    },
  });
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 250) throw new Error('--nodes must be 1..250');
  if (Number(values.vms) !== 0)
    throw new Error('--vms is not available yet: the VM tests (test/os-install.test.ts) boot real firmware');
  const until = values.until;
  if (until !== undefined && until !== 'discovered' && until !== 'installed')
    throw new Error('--until must be discovered or installed');
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new Error('--timeout must be seconds > 0');
  parseLabCidr(values.cidr);
  return {
    nodes,
    name: values.name,
    cidr: values.cidr,
    stateDir: resolve(values['state-dir'] ?? process.env.CROWBAR_LAB_STATE_DIR ?? `${root}.lab-state`),
    until: until as 'discovered' | 'installed' | undefined,
    timeout,
    autoCommit: values['auto-commit'],
    logs: values.logs,
  };
}

async function waitHealthy(base: string, ms: number) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(3000) });
      const h = (await r.json()) as { up: number; total: number };
      if (h.up === h.total && h.total > 0) return;
    } catch {
      // not answering yet
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`the control plane was not healthy within ${ms / 1000} s`);
}

/**
 * Healthy is not yet ready for machines: the admin network's role (network-admin, which registration
 * binds) must exist and dhcp-db must serve the bridge with the provisioner's boot map.
 */
async function waitReady(api: ReturnType<typeof apiClient>, ms: number) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const role = await api.call('GET', '/roles/network-admin').catch(() => ({ status: 0, body: null }));
    const dhcp = await api.call('GET', '/dhcp/stats').catch(() => ({ status: 0, body: null }));
    const stats = dhcp.body as {
      interfaces?: { listening?: boolean }[];
      bootMap?: { source?: string };
    } | null;
    if (role.status === 200 && stats?.interfaces?.[0]?.listening && stats.bootMap?.source === 'provisioner')
      return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `the control plane did not get ready for machines within ${ms / 1000} s (network-admin, dhcp-db)`,
  );
}

/**
 * The bootstrap admin network leases anonymous addresses from 60 (`dhcp`, offsets 21–80): a bigger
 * fleet booting at once needs more, so the `host` range gives up its start to it (through the API).
 */
async function fitDhcpRange(
  api: ReturnType<typeof apiClient>,
  network: string,
  prefix: number,
  nodes: number,
) {
  const last = 21 + nodes + 19;
  if (last <= 80) return;
  if (last + 2 >= 2 ** (32 - prefix) - 2)
    throw new Error(`${nodes} nodes do not fit the admin network /${prefix}`);
  const at = (offset: number) => `${hostAt(network, offset)}/${prefix}`;
  const host = await api.call('PUT', '/network_ranges/host?network=admin', { first: at(last + 1) });
  const dhcp = await api.call('PUT', '/network_ranges/dhcp?network=admin', { last: at(last) });
  if (host.status !== 200 || dhcp.status !== 200)
    throw new Error(
      `could not widen the dhcp range: ${JSON.stringify([host.body, dhcp.body]).slice(0, 300)}`,
    );
  say(`admin network: anonymous DHCP range ${at(21)} – ${at(last)} for ${nodes} nodes`);
}

/** Binds provisioner-os-install to discovered nodes (deployment `lab-install`) and commits it. */
async function bindInstalls(api: ReturnType<typeof apiClient>, status: NodeStatus[], bound: Set<number>) {
  const ready = status.filter((s) => s.stage === 'discovered' && s.id !== undefined && !bound.has(s.id));
  if (ready.length === 0) return;
  if (bound.size === 0) await api.call('POST', '/deployments', { name: 'lab-install', parent: 'system' });
  for (const s of ready) {
    const r = await api.call('POST', '/node_roles', {
      node: s.name,
      role: 'provisioner-os-install',
      deployment: 'lab-install',
    });
    if (r.status === 201 || r.status === 409) bound.add(s.id!);
  }
  await api.call('PUT', '/deployments/lab-install/commit');
}

/** Memory of every process in the lab's namespaces (proportional set size, MB). */
async function nodeMemoryMb(lab: Lab): Promise<number> {
  let kb = 0;
  for (const n of lab.nodes) {
    const pids = (await run(['ip', 'netns', 'pids', `cblab-${lab.name}-${n.spec.index}`]).catch(() => ''))
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of pids) {
      const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
      kb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    }
  }
  return kb / 1024;
}
