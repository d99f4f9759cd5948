import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { faultRequest, sendFault } from './control.js';
import { parseLabCidr } from './network.js';
import { stillRuns } from './shell.js';

/** The lab's command line: `npm run lab -- [options]` and `npm run lab -- fault …`. */
export const usage = `usage: npm run lab -- [--nodes N] [--vms M] [--until discovered|installed] [--timeout S]
                      [--auto-commit] [--name lab] [--cidr 198.18.124.0/22] [--state-dir .lab-state] [--logs]
       npm run lab -- fault <node> link-down|loss <percent>|sshd-stop|reboot|power-off|power-on|clear`;

/** What a running lab writes to `<state>/lab.json`: how `fault` and the next run find it. */
export interface LabRecord {
  name: string;
  owner: string | null;
  launcher: string | null;
  socket: string;
  nodes: { label: string; mac: string; serial: string }[];
  /** QEMU's PIDs (`<pid>:<start time>`), by VM label. */
  vmPids?: Record<string, string | null>;
}

export async function readRecord(stateDir: string): Promise<LabRecord | null> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'lab.json'), 'utf8')) as LabRecord;
  } catch {
    return null;
  }
}

export type LabArgs = ReturnType<typeof parseLabArgs>;

/** The options of a lab run; throws naming the bad one. */
export function parseLabArgs(args: string[], root: string) {
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
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > 250) throw new Error('--nodes must be 0..250');
  const vms = Number(values.vms);
  // Each VM is a QEMU under software emulation with 1 GiB: a handful is what one machine carries.
  if (!Number.isInteger(vms) || vms < 0 || vms > 16) throw new Error('--vms must be 0..16');
  if (nodes + vms === 0) throw new Error('the lab needs at least one node or VM');
  const until = values.until;
  if (until !== undefined && until !== 'discovered' && until !== 'installed')
    throw new Error('--until must be discovered or installed');
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new Error('--timeout must be seconds > 0');
  parseLabCidr(values.cidr);
  return {
    nodes,
    vms,
    name: values.name,
    cidr: values.cidr,
    stateDir: resolve(values['state-dir'] ?? process.env.CROWBAR_LAB_STATE_DIR ?? `${root}.lab-state`),
    until: until as 'discovered' | 'installed' | undefined,
    timeout,
    autoCommit: values['auto-commit'],
    logs: values.logs,
  };
}

/** `fault <node> <kind> [percent]`: one request to the running lab's control socket; exits. */
export async function faultCommand(args: string[], root: string, say: (l: string) => void) {
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
