import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../shared/config.js';
import type { ProvisionerConfig } from './config.js';

/** Debian's iPXE binaries the boot map names, copied into the boot root (links would point outside it). */
const ipxeFiles = ['undionly.kpxe', 'ipxe.pxe', 'ipxe.efi', 'snponly.efi'];

/** Copies `from` to `to` unless an identical-looking copy (size and mtime) is already there. */
function place(from: string, to: string) {
  const s = statSync(from);
  if (existsSync(to)) {
    const t = statSync(to);
    if (t.size === s.size && t.mtimeMs >= s.mtimeMs) return false;
  }
  mkdirSync(join(to, '..'), { recursive: true });
  rmSync(to, { force: true });
  // A hard link where the cache and the boot root share a file system (OS images are hundreds of MB).
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
  return true;
}

/** Places the iPXE loaders, the discovery image and the OS images in the boot root; returns its real path and what was placed. */
export function prepareBootRoot(c: ProvisionerConfig) {
  mkdirSync(c.CROWBAR_BOOT_ROOT, { recursive: true });
  const placed: string[] = [];
  for (const f of ipxeFiles) {
    const from = join(c.CROWBAR_IPXE_DIR, f);
    if (!existsSync(from)) continue;
    if (place(from, join(c.CROWBAR_BOOT_ROOT, f))) placed.push(f);
    if (f === 'snponly.efi' && place(from, join(c.CROWBAR_BOOT_ROOT, 'ipxe', f))) placed.push(`ipxe/${f}`);
  }
  const image = c.CROWBAR_DISCOVERY_IMAGE;
  if (image)
    for (const f of ['vmlinuz', 'initrd.img']) {
      const from = join(image, f);
      if (!existsSync(from))
        throw new ConfigError([`CROWBAR_DISCOVERY_IMAGE: ${from} is missing (run npm run images)`]);
      if (place(from, join(c.CROWBAR_BOOT_ROOT, 'discovery', f))) placed.push(`discovery/${f}`);
    }
  const os = c.CROWBAR_OS_IMAGE_DIR;
  if (os)
    for (const f of readdirSync(os).filter((f) => f.endsWith('.tar.zst')))
      if (place(join(os, f), join(c.CROWBAR_BOOT_ROOT, 'os', f))) placed.push(`os/${f}`);
  return { rootReal: realpathSync(c.CROWBAR_BOOT_ROOT), placed };
}
