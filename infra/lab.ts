/**
 * `npm run lab -- --nodes N --vms M` (root): a simulated data centre on this machine (DESIGN §7). Starts
 * the control plane as `npm start` does (its own state dir, `.lab-state/`), with the admin network on a
 * lab bridge, boots N lightweight nodes and M QEMU VMs (infra/lab/) and prints their progress, the
 * gateway URL and the operator token; runs until Ctrl-C, which removes everything it made.
 * `--until discovered|installed` exits 0 once every node and VM got there, non-zero naming those that
 * did not. `npm run lab -- fault <node> <fault>` in another shell reaches the running lab through its
 * state dir. Argument parsing, readiness and progress live in infra/lab/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { faultCommand, type LabArgs, type LabRecord, parseLabArgs, readRecord, usage } from './lab/cli.js';
import { serveControl } from './lab/control.js';
import { createLab, type Lab } from './lab/fleet.js';
import { hostAt, parseLabCidr } from './lab/network.js';
import {
  apiClient,
  bindInstalls,
  describeMissing,
  fleetStatus,
  type NodeStatus,
  nodeMemoryMb,
  reached,
  summary,
} from './lab/progress.js';
import { fitDhcpRange, waitHealthy, waitReady } from './lab/ready.js';
import { killPid, processId, stillRuns, stopByPidFile } from './lab/shell.js';
import { ensureVmPrograms } from './lab/vm.js';
import { pickPort } from './ports.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`[lab] ${line}\n`);

const [first, ...rest] = process.argv.slice(2);
if (first === 'fault') await faultCommand(rest, root, say);
else await runLab(process.argv.slice(2));

async function runLab(args: string[]) {
  let parsedArgs: LabArgs;
  try {
    parsedArgs = parseLabArgs(args, root);
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
  if (opts.vms > 0) ensureVmPrograms(say);
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
  // QEMUs of a killed lab (they die with it; by PID in case one did not).
  for (const [label, id] of Object.entries(previous?.vmPids ?? {}))
    if (id && stillRuns(id)) {
      say(`stopping VM ${label} a killed lab left (process ${id.split(':')[0]})`);
      killPid(Number(id.split(':')[0]));
    }
  // What that control plane may still have running (its nats-server and PostgreSQL), by their pid files.
  await stopByPidFile(join(stateDir, 'nats', 'nats-server.pid'), say);
  await stopByPidFile(join(stateDir, 'postgres', 'postmaster.pid'), say);
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
    say('stopped; VMs, namespaces, bridge, veths, taps and processes removed');
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
    await fitDhcpRange(api, network, prefix, opts.nodes + opts.vms, say);

    const started = Date.now();
    const nodes = [...(await theLab.addNodes(opts.nodes)), ...(await theLab.addVms(opts.vms))];
    record.nodes = nodes.map((n) => ({ label: n.spec.label, mac: n.spec.mac, serial: n.spec.serial }));
    for (const n of nodes) await n.powerOn();
    record.vmPids = Object.fromEntries(
      theLab.vms.map((v) => [v.spec.label, v.pid() === null ? null : processId(v.pid()!)]),
    );
    await saveRecord();
    const macs = (list: typeof nodes) => (list.length ? ` (MACs ${list[0]!.spec.mac} …)` : '');
    say(
      `${theLab.nodes.length} nodes${macs(theLab.nodes)} and ${theLab.vms.length} VMs${macs(theLab.vms)} powered on; consoles in ${join(stateDir, 'lab', 'nodes')}`,
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
            vms: theLab.vms.length,
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
          `timed out after ${opts.timeout} s: ${missing.length} node(s) not ${goal}: ${missing.map(describeMissing).join(', ')}`,
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
