import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mb, run } from './debian.js';

/** The initramfs archive: a reproducible cpio "newc" of a tree, compressed with zstd. */

/** Every file in the initramfs gets this mtime, so equal inputs give an equal archive. */
const epoch = 1_672_531_200;

/**
 * Writes `root` as the initramfs `image`: a cpio archive at `cpio` (a scratch file), then zstd -9 of it.
 * Returns the archive's uncompressed size.
 */
export function writeInitramfs(root: string, cpio: string, image: string, log: (l: string) => void): number {
  log('writing the initramfs (cpio newc) …');
  const unpackedBytes = writeCpio(root, cpio);
  log(`compressing ${mb(unpackedBytes)} with zstd -9 …`);
  run('zstd', ['-q', '-9', '-T0', '-f', cpio, '-o', image], 'zstd');
  return unpackedBytes;
}

/**
 * Writes `root` as a cpio "newc" archive, plus /dev/console (the kernel opens it before /init runs),
 * owned by root with one mtime, in name order: no privileges needed and equal trees give equal bytes.
 */
function writeCpio(root: string, file: string): number {
  const fd = openSync(file, 'w');
  let ino = 1;
  let bytes = 0;
  const put = (b: Buffer) => {
    writeSync(fd, b);
    bytes += b.length;
  };
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const nlink = name === 'TRAILER!!!' ? 1 : (mode & 0o170000) === 0o040000 ? 2 : 1;
    const fields = [
      name === 'TRAILER!!!' ? 0 : ino++,
      mode,
      0,
      0,
      nlink,
      epoch,
      data.length,
      0,
      0,
      ...rdev,
      nameBuf.length,
      0,
    ];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    put(Buffer.from(header, 'ascii'));
    put(nameBuf);
    put(pad(110 + nameBuf.length));
    put(data);
    put(pad(data.length));
  };
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isSymbolicLink()) entry(path, st.mode, Buffer.from(readlinkSync(join(root, path))));
      else if (st.isDirectory()) {
        entry(path, st.mode, Buffer.alloc(0));
        walk(path);
      } else entry(path, st.mode, readFileSync(join(root, path)));
    }
  };
  try {
    walk('');
    entry('dev/console', 0o020600, Buffer.alloc(0), [5, 1]);
    entry('TRAILER!!!', 0, Buffer.alloc(0));
  } finally {
    closeSync(fd);
  }
  return bytes;
}
