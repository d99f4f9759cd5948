/**
 * `npm run images`: builds the boot images that are missing from the machine-wide cache
 * ($CROWBAR_IMAGE_CACHE, default /var/cache/crowbar/images) and says where they are. Today: the
 * discovery image (kernel + initramfs with the agent) that unknown machines PXE-boot into.
 */
import { defaultImageCache, ensureDiscoveryImage, ImageBuildError } from './images/discovery.js';

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
} catch (err) {
  if (!(err instanceof ImageBuildError)) throw err;
  log(err.message);
  process.exitCode = 1;
}
