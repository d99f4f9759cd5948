import { createReadStream, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { sep } from 'node:path';

/** Why a boot path is refused; the HTTP status follows from it. */
export type PathRefusal = 'bad_path' | 'outside_root' | 'not_found' | 'not_a_file';

/**
 * Resolves a request path inside the boot root: `%xx` decoded once, no NUL, backslash or `..` segment,
 * and the real path (symlinks followed) must stay under the root's real path and be a regular file.
 * Nothing outside the boot root is ever served, whatever the path or the links in the tree.
 */
export async function resolveBootPath(
  rootReal: string,
  urlPath: string,
): Promise<{ ok: true; path: string; stats: Stats } | { ok: false; reason: PathRefusal }> {
  let p: string;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return { ok: false, reason: 'bad_path' };
  }
  if (p.includes('\0') || p.includes('\\') || p.length > 1024) return { ok: false, reason: 'bad_path' };
  const parts = p.split('/').filter((s) => s.length > 0);
  if (parts.some((s) => s === '..' || s === '.')) return { ok: false, reason: 'bad_path' };
  if (parts.length === 0) return { ok: false, reason: 'not_a_file' };
  let real: string;
  try {
    real = await realpath(`${rootReal}${sep}${parts.join(sep)}`);
  } catch {
    return { ok: false, reason: 'not_found' };
  }
  if (!real.startsWith(`${rootReal}${sep}`)) return { ok: false, reason: 'outside_root' };
  const stats = await stat(real).catch(() => null);
  if (!stats) return { ok: false, reason: 'not_found' };
  if (!stats.isFile()) return { ok: false, reason: 'not_a_file' };
  return { ok: true, path: real, stats };
}

/** Parses one `bytes=a-b` range (RFC 9110 §14); null for none, 'bad' when unsatisfiable. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges (a comma) or another unit: answer with the whole file, as RFC 9110 allows.
  if (!m) return header.includes(',') || !header.startsWith('bytes=') ? null : 'bad';
  const [, a, b] = m;
  if (a === '' && b === '') return 'bad';
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'bad';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || end < start) return 'bad';
  return { start, end };
}

/** Streams a file (or the asked range of it); resolves with the bytes sent. */
export function sendFile(
  res: ServerResponse,
  file: { path: string; stats: Stats },
  rangeHeader: string | undefined,
  head: boolean,
): Promise<number> {
  const size = file.stats.size;
  const range = parseRange(rangeHeader, size);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Last-Modified', file.stats.mtime.toUTCString());
  res.setHeader('Content-Type', 'application/octet-stream');
  if (range === 'bad') {
    res.writeHead(416, { 'Content-Range': `bytes */${size}` });
    res.end();
    return Promise.resolve(0);
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = size === 0 ? 0 : end - start + 1;
  res.setHeader('Content-Length', String(length));
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  res.writeHead(range ? 206 : 200);
  if (head || length === 0) {
    res.end();
    return Promise.resolve(0);
  }
  return new Promise((resolve) => {
    const stream = createReadStream(file.path, { start, end, highWaterMark: 256 * 1024 });
    let sent = 0;
    stream.on('data', (chunk) => {
      sent += chunk.length;
    });
    stream.on('error', () => {
      res.destroy();
      resolve(sent);
    });
    res.on('close', () => {
      stream.destroy();
      resolve(sent);
    });
    stream.pipe(res);
  });
}
