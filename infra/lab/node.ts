import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianProgram } from '../packages.js';
import { labNames } from './network.js';
import { childrenOf, killPid, run } from './shell.js';

const tools = fileURLToPath(new URL('./node/', import.meta.url));
const agent = fileURLToPath(new URL('../images/agent/', import.meta.url));

/** What the lab gives a node: its place in the lab, its MAC and serial (its facts tell them apart). */
export interface LabNodeSpec {
  lab: string;
  index: number;
  /** `n<index>`: how the lab and `lab fault` name it before registration names it. */
  label: string;
  mac: string;
  serial: string;
  /** The node's directory in the lab's state dir: ident/, disk/ (the overlay's upper dir), console.log. */
  dir: string;
}

export type Fault = { kind: 'link-down' } | { kind: 'loss'; percent: number } | { kind: 'sshd-stop' };

export interface LabNode {
  spec: LabNodeSpec;
  power(): 'on' | 'off';
  /** PID (root namespace) of the node's firmware, PID 1 of its namespace; null while off. */
  pid(): number | null;
  /** Boots it (nothing when on). */
  powerOn(): Promise<void>;
  /** Pulls the plug: the node's processes end at once, nothing runs its shutdown hooks. */
  powerOff(): Promise<void>;
  /** Presses reboot: the shutdown hooks run (alive=false), then the firmware boots again. */
  reboot(): void;
  /** Runs a shell command inside the node (its root and namespaces); resolves with stdout. */
  exec(command: string, timeoutMs?: number): Promise<string>;
  fault(f: Fault): Promise<void>;
  /** Undoes every fault: link up, no loss, sshd running, powered on. */
  clear(): Promise<void>;
  faults(): string[];
  console(): Promise<string>;
  /** Graceful stop at the lab's end: poweroff (bounded), then the plug. */
  stop(): Promise<void>;
}

/** Starts the node's sshd again (same config as the agent or the installed system wrote) unless it runs. */
const sshdBack = [
  'listening() { /run/crowbar-lab/bin/netstat -ltn 2>/dev/null | grep -q ":22 "; }',
  'listening && exit 0',
  '[ -r /run/crowbar/sshd_config ] || exit 0',
  '/usr/sbin/sshd -f /run/crowbar/sshd_config -E /run/crowbar/sshd.log || { cat /run/crowbar/sshd.log >&2; exit 1; }',
  'i=0; until listening; do [ $i -ge 50 ] && { echo "sshd is not listening" >&2; exit 1; }; sleep 0.1; i=$((i + 1)); done',
].join('\n');

/**
 * Random loss of `percent` % of the node's packets both ways, by nftables in the node's namespace (the
 * kernel may have no netem); 0 removes it.
 */
async function setLoss(ns: string, percent: number): Promise<void> {
  ensureDebianProgram({
    candidates: ['/usr/sbin/nft'],
    pkg: 'nftables',
    why: 'the lab drops packets with it',
    log: () => undefined,
  });
  const rules = [
    'table inet crowbar-lab {',
    '  chain in { type filter hook input priority 0; numgen random mod 100 < PCT drop; }',
    '  chain out { type filter hook output priority 0; numgen random mod 100 < PCT drop; }',
    '}',
  ]
    .join('\n')
    .replaceAll('PCT', String(Math.round(percent)));
  await run(['ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'crowbar-lab']).catch(
    () => undefined,
  );
  if (percent > 0) await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: `${rules}\n` });
}

const write = (path: string, text: string) => writeFile(path, `${text}\n`);

/** The node's identity as files its agent reads instead of sysfs: DMI, one disk, NIC and MAC. */
async function writeIdent(spec: LabNodeSpec): Promise<void> {
  const ident = join(spec.dir, 'ident');
  const disk = join(ident, 'block', 'lab0');
  await mkdir(join(ident, 'dmi'), { recursive: true });
  await mkdir(join(disk, 'device'), { recursive: true });
  await mkdir(join(disk, 'queue'), { recursive: true });
  await write(
    join(ident, 'node.conf'),
    [`NODE_NIC=eth0`, `NODE_MAC=${spec.mac}`, `NODE_LABEL=${spec.label}`, `NODE_SERIAL=${spec.serial}`].join(
      '\n',
    ),
  );
  const uuidFile = join(ident, 'dmi', 'product_uuid');
  const uuid = await readFile(uuidFile, 'utf8').catch(() => randomUUID());
  await write(join(ident, 'dmi', 'sys_vendor'), 'Crowbar');
  await write(join(ident, 'dmi', 'product_name'), 'Lab node');
  await write(join(ident, 'dmi', 'product_serial'), spec.serial);
  await write(uuidFile, uuid.trim());
  // 64 GiB in 512-byte sectors, as /sys/block/<disk>/size says.
  await write(join(disk, 'size'), String(64 * 2 ** 21));
  await write(join(disk, 'removable'), '0');
  await write(join(disk, 'queue', 'rotational'), '0');
  await write(join(disk, 'device', 'model'), 'Crowbar lab disk');
  await write(join(disk, 'device', 'vendor'), 'Crowbar');
  await write(join(disk, 'device', 'serial'), `${spec.serial}-D0`);
}

/**
 * A lightweight node: its firmware (infra/lab/node/init, then ./firmware) runs as PID 1 of fresh mount,
 * UTS and PID namespaces inside the node's network namespace; its console goes to console.log in its
 * directory. An exit with code 100 is a reboot (booted again); any other end leaves it off.
 */
export async function createLabNode(spec: LabNodeSpec, log: (line: string) => void): Promise<LabNode> {
  await writeIdent(spec);
  const ns = labNames(spec.lab).netns(spec.index);
  const veth = labNames(spec.lab).veth(spec.index);
  let proc: ChildProcess | null = null;
  let stopping = false;
  const active = new Set<string>();
  let exited: Promise<void> = Promise.resolve();

  const pid1 = () => (proc?.pid ? (childrenOf(proc.pid)[0] ?? null) : null);

  async function powerOn(): Promise<void> {
    if (proc) return;
    const consoleFile = await open(join(spec.dir, 'console.log'), 'a');
    const p = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'unshare',
        '--mount',
        '--uts',
        '--pid',
        '--fork',
        '--kill-child',
        'sh',
        join(tools, 'init'),
        spec.dir,
        tools,
        agent,
      ],
      { stdio: ['ignore', consoleFile.fd, consoleFile.fd] },
    );
    proc = p;
    exited = new Promise((resolve) => {
      p.once('exit', (code) => {
        void consoleFile.close();
        if (proc === p) proc = null;
        resolve();
        if (code === 100 && !stopping) {
          log(`${spec.label} reboots`);
          powerOn().catch((e: unknown) => log(`${spec.label} did not boot again: ${String(e)}`));
        }
      });
    });
  }

  const exec = (command: string, timeoutMs = 15_000) => {
    const pid = pid1();
    if (pid === null) return Promise.reject(new Error(`${spec.label} is powered off`));
    return run(
      ['nsenter', '-t', String(pid), '-m', '-u', '-n', '-p', '-r', '-w', '--', 'sh', '-c', command],
      {
        timeoutMs,
      },
    );
  };

  const node: LabNode = {
    spec,
    power: () => (proc ? 'on' : 'off'),
    pid: pid1,
    powerOn,
    async powerOff() {
      const p = proc;
      if (!p) return;
      // unshare --kill-child: its end takes the node's PID 1, and with it every process of the node.
      const pid = pid1();
      p.kill('SIGKILL');
      if (pid !== null) killPid(pid);
      await exited;
    },
    reboot() {
      const pid = pid1();
      if (pid !== null) killPid(pid, 'SIGHUP');
    },
    exec,
    async fault(f) {
      if (f.kind === 'link-down') await run(['ip', 'link', 'set', veth, 'down']);
      else if (f.kind === 'loss') await setLoss(ns, f.percent);
      else await exec('kill $(cat /run/crowbar/sshd.pid)');
      active.add(f.kind === 'loss' ? `loss ${f.percent}%` : f.kind);
    },
    async clear() {
      await run(['ip', 'link', 'set', veth, 'up']);
      await run(['ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'crowbar-lab']).catch(
        () => undefined,
      );
      if (proc) await exec(sshdBack);
      else await powerOn();
      active.clear();
    },
    faults: () => [...active],
    console: () => readFile(join(spec.dir, 'console.log'), 'utf8').catch(() => ''),
    async stop() {
      stopping = true;
      const pid = pid1();
      if (pid !== null) {
        killPid(pid, 'SIGUSR2');
        const timer = setTimeout(() => void node.powerOff(), 12_000);
        await exited;
        clearTimeout(timer);
      } else await node.powerOff();
    },
  };
  return node;
}
