import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addPorts,
  checkLabName,
  createBridge,
  type LabBridge,
  labNames,
  parseLabCidr,
  removePort,
  sweepDeadLabs,
  sweepLab,
} from './network.js';
import { createLabNode, type LabNode } from './node.js';
import { run } from './shell.js';
import { createLabVm } from './vm.js';

/**
 * A lab: lightweight nodes and QEMU VMs on a bridge of their own (DESIGN §7). `createLab` sweeps what a killed lab of
 * the same name left, makes the bridge with the admin node's address, and adds nodes in batches;
 * `stop` powers them off and removes everything it made. Nothing in here talks to the control plane:
 * the nodes find it through DHCP like machines in a data centre.
 */
export interface LabOptions {
  /** 1-6 of [a-z0-9]; in every name the lab makes. */
  name: string;
  /** The lab's own directory (node disks, consoles); emptied at start. */
  dir: string;
  /** The admin node's address on the lab bridge, with the admin network's prefix: `198.18.124.10/22`. */
  address: string;
  log?: (line: string) => void;
}

export interface Lab {
  name: string;
  bridge: LabBridge;
  /** The lightweight nodes. */
  nodes: LabNode[];
  /** The VMs (real firmware): labels `v1`…, MACs `52:54:00:…`. */
  vms: LabNode[];
  /** Lightweight nodes, then VMs. */
  machines(): LabNode[];
  /** Makes `count` more nodes (powered off). */
  addNodes(count: number): Promise<LabNode[]>;
  /** Makes `count` more VMs (powered off); QEMU must be installed (`ensureVmPrograms`). */
  addVms(count: number): Promise<LabNode[]>;
  /** By label (`n3`, `v1`), index (lightweight nodes), MAC, or a name registration gave it (`d02-cb-…`). */
  node(ref: string): LabNode | undefined;
  stop(): Promise<void>;
}

/** QEMU's MACs for VMs, one byte from the lab's name and two for the VM: `52:54:00:xx:00:01`. */
export function labVmMac(lab: string, index: number): string {
  const h = createHash('sha256').update(lab).digest();
  const bytes = [0x52, 0x54, 0x00, h[0]!, (index >> 8) & 255, index & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Locally administered MACs, two bytes from the lab's name and two for the node: `02:cb:xx:xx:00:07`. */
export function labMac(lab: string, index: number): string {
  const h = createHash('sha256').update(lab).digest();
  const bytes = [0x02, 0xcb, h[0]!, h[1]!, (index >> 8) & 255, index & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export async function createLab(opts: LabOptions): Promise<Lab> {
  checkLabName(opts.name);
  const log = opts.log ?? (() => undefined);
  const [address, prefixText] = opts.address.split('/');
  if (!address || !prefixText)
    throw new Error(`lab address ${opts.address} needs a prefix: 198.18.124.10/22`);
  const { prefix } = parseLabCidr(networkCidr(opts.address));
  for (const note of [...(await sweepDeadLabs()), ...(await sweepLab(opts.name))]) log(note);
  await rm(join(opts.dir, 'nodes'), { recursive: true, force: true });
  await mkdir(join(opts.dir, 'nodes'), { recursive: true });
  const bridge = await createBridge(opts.name, address, prefix);
  const nodes: LabNode[] = [];
  const vms: LabNode[] = [];
  const names = labNames(opts.name);

  const lab: Lab = {
    name: opts.name,
    bridge,
    nodes,
    vms,
    machines: () => [...nodes, ...vms],
    async addNodes(count) {
      const first = nodes.length + 1;
      const specs = Array.from({ length: count }, (_, k) => {
        const index = first + k;
        return {
          lab: opts.name,
          index,
          label: `n${index}`,
          mac: labMac(opts.name, index),
          serial: `CBLAB-${opts.name.toUpperCase()}-${String(index).padStart(4, '0')}`,
          dir: join(opts.dir, 'nodes', `n${index}`),
        };
      });
      // Batches keep one `ip -batch` short enough to fail clearly.
      for (let i = 0; i < specs.length; i += 50)
        await addPorts(
          opts.name,
          specs.slice(i, i + 50).map((s) => ({ index: s.index, mac: s.mac })),
        );
      const made: LabNode[] = [];
      for (const s of specs) {
        await mkdir(s.dir, { recursive: true });
        made.push(await createLabNode(s, log));
      }
      nodes.push(...made);
      return made;
    },
    async addVms(count) {
      const made: LabNode[] = [];
      for (let k = 0; k < count; k++) {
        const index = vms.length + 1;
        const spec = {
          lab: opts.name,
          index,
          label: `v${index}`,
          mac: labVmMac(opts.name, index),
          serial: `CBLAB-${opts.name.toUpperCase()}-V${String(index).padStart(3, '0')}`,
          dir: join(opts.dir, 'nodes', `v${index}`),
        };
        const vm = await createLabVm(spec, bridge.name, log);
        vms.push(vm);
        made.push(vm);
      }
      return made;
    },
    node(ref) {
      const r = ref.toLowerCase();
      const mac = /^d?([0-9a-f]{2}(?:[-:][0-9a-f]{2}){5})(?:\.|$)/.exec(r)?.[1]?.replaceAll('-', ':');
      return (
        nodes.find((n) => n.spec.label === r || String(n.spec.index) === r) ??
        lab.machines().find((n) => n.spec.label === r || (mac !== undefined && n.spec.mac === mac))
      );
    },
    async stop() {
      await Promise.all(lab.machines().map((n) => n.stop().catch(() => n.powerOff())));
      for (const n of nodes) await removePort(opts.name, n.spec.index);
      await run(['ip', 'link', 'del', names.bridge]).catch(() => undefined);
      // Anything a killed node left (there should be nothing): swept by name.
      await sweepLab(opts.name).catch(() => undefined);
    },
  };
  return lab;
}

/** `198.18.124.10/22` → `198.18.124.0/22`. */
function networkCidr(addressCidr: string): string {
  const [a, p] = addressCidr.split('/');
  const prefix = Number(p);
  const v = a!.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (v & mask) >>> 0;
  return `${[net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join('.')}/${prefix}`;
}
