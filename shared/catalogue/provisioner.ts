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

export const provisionerMessages = {
  /** The boot map changed (a bootenv or loader was added or changed). */
  bootMapChanged: event('bootmap.changed', 1, z.object({ map: bootMap }), { map: bootMapExample }),
  bootMapGet: rpc('provisioner', 'bootmap.get', 1, z.object({}), bootMap, {
    request: {},
    response: bootMapExample,
  }),
};
export const provisionerStreams: StreamDecl[] = [];
