import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { intFromEnv } from '../../shared/config.js';

const dirList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

export const defaultBootenvDir = fileURLToPath(new URL('./bootenvs', import.meta.url));

/** provisioner settings, from the environment. */
export const provisionerConfig = z.object({
  /** HTTP for iPXE scripts, kernels, initrds, images and the cluster key. */
  CROWBAR_PROVISIONER_HTTP_PORT: intFromEnv(0, 65_535).default(8091),
  CROWBAR_PROVISIONER_HTTP_ADDRESS: z.string().min(1).default('0.0.0.0'),
  /** 69 when running as root, else 10069; 0 picks a free port (tests). */
  CROWBAR_TFTP_PORT: intFromEnv(0, 65_535).optional(),
  CROWBAR_TFTP_ADDRESS: z.string().min(1).default('0.0.0.0'),
  /** Threads moving TFTP blocks; unset: one per core, at most 4; 0: transfers on the service's own thread. */
  CROWBAR_TFTP_THREADS: intFromEnv(0, 64).optional(),
  /** The boot root: everything served over TFTP and HTTP lives under it (made if missing). */
  CROWBAR_BOOT_ROOT: z.string().min(1).default('/var/lib/crowbar/boot'),
  /** Bootenv YAML directories, comma-separated. */
  CROWBAR_BOOTENVS: dirList.default([defaultBootenvDir]),
  /** Where Debian's `ipxe` package puts its binaries (linked into the boot root). */
  CROWBAR_IPXE_DIR: z.string().min(1).default('/usr/lib/ipxe'),
  /** The discovery image (vmlinuz + initrd.img), built by `npm run images`; linked as discovery/. */
  CROWBAR_DISCOVERY_IMAGE: z.string().min(1).optional(),
  /** A directory of OS images (`<os>.tar.zst`, built by `npm run images`), placed under os/ in the boot root. */
  CROWBAR_OS_IMAGE_DIR: z.string().min(1).optional(),
  /** The OS provisioner-os-install installs when the node's provisioner-target_os attrib is unset. */
  CROWBAR_TARGET_OS: z
    .string()
    .regex(/^[a-z][a-z0-9._-]{0,40}$/)
    .default('debian-12'),
  /** How long an install run waits for dhcp-db and the provisioner to serve the install bootenv. */
  CROWBAR_INSTALL_CONVERGE_TIMEOUT_S: intFromEnv(1, 3600).default(300),
  /** Signs discovery tokens; the gateway checks them with the same secret. */
  CROWBAR_DISCOVERY_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  CROWBAR_DISCOVERY_TOKEN_TTL: intFromEnv(60, 30 * 86_400).default(3600),
  /** The gateway's port as nodes reach it (on the same host as the provisioner). */
  CROWBAR_HTTP_PORT: intFromEnv(0, 65_535).default(3000),
  /** The cluster's private key; its `.pub` is what nodes install as root's authorized key. */
  CROWBAR_SSH_KEY: z.string().min(1).optional(),
});
export type ProvisionerConfig = z.infer<typeof provisionerConfig>;

export const tftpPort = (c: ProvisionerConfig) => c.CROWBAR_TFTP_PORT ?? (userInfo().uid === 0 ? 69 : 10_069);
