/**
 * Which file a TFTP file name means, and the proof that it lies under the boot root. A leading `/` means
 * "relative to the root" (PXE ROMs and iPXE send both forms). The name is checked as text first (no NUL,
 * no backslash, no `..` segment), then its real path must be under the root's real path, and the file
 * opened is checked again through /proc/self/fd, so a symlink swapped in between cannot take it outside.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, readlink, realpath, stat } from 'node:fs/promises';
import { ErrorCode } from './packet.js';

export type PathRefusal = 'bad_path' | 'not_found' | 'outside_root' | 'not_regular' | 'unreadable';

const ANSWER: Record<PathRefusal, number> = {
  bad_path: ErrorCode.ACCESS_VIOLATION,
  not_found: ErrorCode.FILE_NOT_FOUND,
  outside_root: ErrorCode.ACCESS_VIOLATION,
  not_regular: ErrorCode.ACCESS_VIOLATION,
  unreadable: ErrorCode.ACCESS_VIOLATION,
};

/** A file name that is not served; `answer` is the TFTP error code for the reply. */
export class PathError extends Error {
  readonly reason: PathRefusal;
  readonly answer: number;
  constructor(reason: PathRefusal, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PathError';
    this.reason = reason;
    this.answer = ANSWER[reason];
  }
}

const MAX_NAME = 1024;

/** The root's real path; fails unless it is a directory. */
export async function bootRoot(root: string): Promise<string> {
  const real = await realpath(root);
  if (!(await stat(real)).isDirectory()) throw new Error(`boot root ${root} is not a directory`);
  return real;
}

/** The name's segments below the root, or a PathError for names that could only mean to get out. */
export function bootSegments(file: string): string[] {
  if (file.length === 0 || file.length > MAX_NAME) throw new PathError('bad_path', 'bad file name length');
  if (file.includes('\0')) throw new PathError('bad_path', 'NUL in file name');
  if (file.includes('\\')) throw new PathError('bad_path', 'backslash in file name');
  const segments: string[] = [];
  for (const s of file.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') throw new PathError('bad_path', '.. in file name');
    segments.push(s);
  }
  if (segments.length === 0) throw new PathError('not_regular', 'the root itself');
  return segments;
}

const inside = (root: string, p: string) => p.startsWith(root === '/' ? '/' : `${root}/`);

export interface BootFile {
  /** Real path under the root. */
  path: string;
  size: number;
  handle: FileHandle;
}

/** Opens `file` under `root` (a real path from bootRoot) for reading; throws PathError when refused. */
export async function openBootFile(root: string, file: string): Promise<BootFile> {
  const segments = bootSegments(file);
  let real: string;
  try {
    real = await realpath(`${root}/${segments.join('/')}`);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new PathError('not_found', 'file not found', { cause });
    throw new PathError('unreadable', 'file cannot be resolved', { cause });
  }
  if (!inside(root, real)) throw new PathError('outside_root', 'file is outside the boot root');
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the last step is no new symlink.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PathError('not_found', 'file not found', { cause });
    throw new PathError('unreadable', 'file cannot be opened', { cause });
  }
  try {
    const st: Stats = await handle.stat();
    if (!st.isFile()) throw new PathError('not_regular', 'not a regular file');
    const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
    if (!inside(root, opened)) throw new PathError('outside_root', 'file is outside the boot root');
    return { path: real, size: st.size, handle };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
