import { z } from 'zod';
import { event, rpc, type StreamDecl } from './define.js';

/**
 * Messages owned by the provisioner. The boot map is how dhcp-db learns which boot program a client
 * gets: per-architecture iPXE loaders over TFTP, EFI binaries for UEFI HTTP boot, and the per-node iPXE
 * script every iPXE client is sent to. Until the provisioner answers, dhcp-db uses its configured default.
 */
const path = z.string().min(1).max(255);
export const bootMap = z.object({
  /** First-stage iPXE loaders served over TFTP, as paths in the TFTP root. */
  tftp: z.object({
    bios: path,
    uefi32: path.nullable(),
    uefi64: path,
    arm64: path.nullable(),
  }),
  /** EFI binaries for UEFI HTTP boot, as paths under the HTTP base. */
  http: z.object({ uefi64: path, arm64: path.nullable() }),
  /** Path of a node's iPXE script under the HTTP base; `{mac}` becomes e.g. 52-54-00-12-34-56. */
  script: path.refine((s) => s.startsWith('/'), 'must be an absolute path such as /boot/{mac}.ipxe'),
  /** Bootenvs that boot from the local disk: their clients get no boot program. */
  localBootenvs: z.array(z.string().min(1).max(100)).max(100),
  /** The provisioner's HTTP port on the admin node (boot URLs use the admin address on the client's network). */
  httpPort: z.number().int().min(1).max(65_535),
  /** The TFTP server clients are sent to; null means the admin node's address on the client's network. */
  tftpServer: z.string().nullable(),
  /** Increases with every change, so consumers keep the newest. */
  version: z.number().int().nonnegative(),
});
export type BootMap = z.infer<typeof bootMap>;

export const bootMapExample: BootMap = {
  tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'snponly.efi', arm64: null },
  http: { uefi64: '/ipxe/snponly.efi', arm64: null },
  script: '/boot/{mac}.ipxe',
  localBootenvs: ['local'],
  httpPort: 8091,
  tftpServer: null,
  version: 1,
};

export const bootEvent = z.object({
  id: z.number().int().positive(),
  nodeId: z.number().int().positive().nullable(),
  mac: z.string().nullable(),
  client: z.string(),
  transport: z.enum(['http', 'tftp']),
  file: z.string(),
  bootenv: z.string().nullable(),
  bytes: z.number().int().nonnegative(),
  ok: z.boolean(),
  error: z.string().nullable(),
  at: z.string(),
});
export type BootEvent = z.infer<typeof bootEvent>;
const bootEventExample: BootEvent = {
  id: 3,
  nodeId: 2,
  mac: '52:54:00:12:34:56',
  client: '198.18.0.21',
  transport: 'http',
  file: '/boot/52-54-00-12-34-56.ipxe',
  bootenv: 'sledgehammer',
  bytes: 412,
  ok: true,
  error: null,
  at: '2026-12-01T10:00:00.000Z',
};
export const bootenvSummary = z.object({
  name: z.string(),
  description: z.string(),
  local: z.boolean(),
  kernel: z.string().nullable(),
  initrds: z.array(z.string()),
  next: z.string().nullable(),
  templates: z.array(z.string()),
});

export const provisionerMessages = {
  /** A machine fetched a boot file (script, loader, kernel, initrd, image) over HTTP or TFTP. */
  bootFetched: event('boot.fetched', 1, z.object({ boot: bootEvent }), { boot: bootEventExample }),
  bootEventList: rpc(
    'provisioner',
    'bootevent.list',
    1,
    z.object({
      nodeId: z.number().int().positive().optional(),
      mac: z.string().max(64).optional(),
      /** Cursor: events with a smaller id than this (newest first). */
      before: z.number().int().positive().optional(),
      limit: z.number().int().positive().max(1000).default(100),
    }),
    z.object({ events: z.array(bootEvent) }),
    { request: { nodeId: 2 }, response: { events: [bootEventExample] } },
  ),
  bootenvList: rpc(
    'provisioner',
    'bootenv.list',
    1,
    z.object({}),
    z.object({ bootenvs: z.array(bootenvSummary) }),
    {
      request: {},
      response: {
        bootenvs: [
          {
            name: 'sledgehammer',
            description: 'Discovery image',
            local: false,
            kernel: 'discovery/vmlinuz',
            initrds: ['discovery/initrd.img'],
            next: null,
            templates: [],
          },
        ],
      },
    },
  ),
  /** The bootenv the provisioner serves a node now (what its next boot gets), or null if it does not know it. */
  nodeBootstate: rpc(
    'provisioner',
    'node.bootstate',
    1,
    z.object({ nodeId: z.number().int().positive() }),
    z.object({ nodeId: z.number().int().positive(), bootenv: z.string().nullable() }),
    { request: { nodeId: 2 }, response: { nodeId: 2, bootenv: 'sledgehammer' } },
  ),
  /** The boot map changed (a bootenv or loader was added or changed). */
  bootMapChanged: event('bootmap.changed', 1, z.object({ map: bootMap }), { map: bootMapExample }),
  bootMapGet: rpc('provisioner', 'bootmap.get', 1, z.object({}), bootMap, {
    request: {},
    response: bootMapExample,
  }),
};
export const provisionerStreams: StreamDecl[] = [];
