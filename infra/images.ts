/**
 * `npm run images`: builds the boot images that are missing from the machine-wide cache
 * ($CROWBAR_IMAGE_CACHE, default /var/cache/crowbar/images) and says where they are. Today: the
 * discovery image (kernel + initramfs with the agent) that unknown machines PXE-boot into, and the OS
 * image (Debian bookworm) that provisioner-os-install writes to a node's disk. `npm run images --
 * discovery` builds only the first.
 */
import { defaultImageCache, ensureDiscoveryImage, ImageBuildError } from './images/discovery.js';
import { ensureOsImage } from './images/os.js';

const log = (line: string) => console.error(`[images] ${line}`);
try {
  const image = ensureDiscoveryImage({ cacheDir: defaultImageCache(), log });
  const m = image.manifest;
  console.log(
    JSON.stringify({
      image: 'discovery',
      version: image.version,
      built: image.built,
      kernel: image.kernel,
      initrd: image.initrd,
      kernelRelease: m.kernelRelease,
      kernelBytes: m.kernelBytes,
      initrdBytes: m.initrdBytes,
    }),
  );
  if (!process.argv.includes('discovery')) {
    const os = ensureOsImage({ cacheDir: defaultImageCache(), log });
    console.log(
      JSON.stringify({
        image: 'os',
        name: os.name,
        version: os.version,
        built: os.built,
        file: os.file,
        bytes: os.manifest.bytes,
        unpackedBytes: os.manifest.unpackedBytes,
      }),
    );
  }
} catch (err) {
  if (!(err instanceof ImageBuildError)) throw err;
  log(err.message);
  process.exitCode = 1;
}
