import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type ssh2 from 'ssh2';
import { SshError, SshTimeoutError } from './errors.js';

/** Bounds for directory copies so a runaway tree cannot fill the disk or loop forever. */
const maxFiles = 10_000;
const defaultMaxFileBytes = 64 * 1024 * 1024;

const wrap = (what: string) => (err: unknown) =>
  new SshError(`sftp ${what}: ${(err as Error).message}`, { cause: err });

/** Time a transfer may take beyond the operation's own allowance: one second per MiB. */
const perByteMs = 1000 / (1024 * 1024);

/**
 * One lazily opened SFTP channel per connection, with file and tree copies on top. Every operation has a
 * deadline (`opTimeoutMs`, plus a second per MiB moved): a node gone without closing its connection
 * (keep-alives are off) would otherwise hold the caller until TCP gives up, many minutes later. A
 * channel that missed a deadline is dropped; the next operation opens another.
 */
export class SftpSession {
  private opening: Promise<ssh2.SFTPWrapper> | null = null;
  constructor(
    private readonly client: ssh2.Client,
    private readonly opTimeoutMs = 30_000,
  ) {}

  wrapper(): Promise<ssh2.SFTPWrapper> {
    this.opening ??= this.deadline('open', 0, (done) => this.client.sftp(done));
    const p = this.opening;
    p.catch(() => {
      if (this.opening === p) this.opening = null;
    });
    return p;
  }

  close() {
    void this.opening?.then((s) => s.end()).catch(() => undefined);
  }

  /** Runs one SFTP call, failing it with SshTimeoutError if no answer comes within its allowance. */
  private deadline<T>(
    what: string,
    bytes: number,
    call: (done: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T> {
    const ms = Math.round(this.opTimeoutMs + bytes * perByteMs);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        // The channel may answer late or never: it is not used again.
        const stuck = this.opening;
        this.opening = null;
        void stuck?.then((s) => s.end()).catch(() => undefined);
        reject(new SshTimeoutError(`sftp ${what}: no answer in ${ms} ms`));
      }, ms);
      call((err, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(wrap(what)(err));
        else resolve(value as T);
      });
    });
  }

  async putFile(remotePath: string, content: string | Buffer, mode = 0o644): Promise<void> {
    const s = await this.wrapper();
    await this.deadline<void>(`write ${remotePath}`, Buffer.byteLength(content), (done) =>
      s.writeFile(remotePath, content, { mode }, done),
    );
  }

  async getFile(remotePath: string, maxBytes = defaultMaxFileBytes): Promise<Buffer> {
    const s = await this.wrapper();
    const st = await this.deadline<ssh2.Stats>(`stat ${remotePath}`, 0, (done) => s.stat(remotePath, done));
    if (st.size > maxBytes)
      throw new SshError(`sftp read ${remotePath}: ${st.size} bytes exceeds ${maxBytes}`);
    return this.deadline<Buffer>(`read ${remotePath}`, st.size, (done) => s.readFile(remotePath, done));
  }

  private async mkdirp(s: ssh2.SFTPWrapper, dir: string): Promise<void> {
    const parts = posix.normalize(dir).split('/');
    let cur = dir.startsWith('/') ? '' : '.';
    for (const part of parts) {
      if (!part) continue;
      cur = `${cur}/${part}`;
      const at = cur;
      const made = await this.deadline<void>(`mkdir ${at}`, 0, (done) => s.mkdir(at, done)).then(
        () => null,
        (err: unknown) => err,
      );
      if (made === null) continue;
      if (made instanceof SshTimeoutError) throw made;
      // Already there (or not ours to create): check it is a directory.
      const st = await this.deadline<ssh2.Stats>(`stat ${at}`, 0, (done) => s.stat(at, done)).catch(
        () => null,
      );
      if (!st?.isDirectory()) throw made;
    }
  }

  async putDir(localDir: string, remoteDir: string): Promise<number> {
    const s = await this.wrapper();
    let count = 0;
    const walk = async (local: string, remote: string) => {
      await this.mkdirp(s, remote);
      for (const e of await readdir(local, { withFileTypes: true })) {
        if (++count > maxFiles) throw new SshError(`putDir ${localDir}: more than ${maxFiles} entries`);
        const l = join(local, e.name);
        const r = posix.join(remote, e.name);
        if (e.isDirectory()) await walk(l, r);
        else if (e.isFile()) await this.putFile(r, await readFile(l), 0o755);
      }
    };
    await walk(localDir, remoteDir);
    return count;
  }

  async getDir(remoteDir: string, localDir: string): Promise<number> {
    const s = await this.wrapper();
    let count = 0;
    const walk = async (remote: string, local: string) => {
      await mkdir(local, { recursive: true });
      const entries = await this.deadline<ssh2.FileEntry[]>(`readdir ${remote}`, 0, (done) =>
        s.readdir(remote, done),
      );
      for (const e of entries) {
        if (e.filename === '.' || e.filename === '..' || e.filename.includes('/')) continue;
        if (++count > maxFiles) throw new SshError(`getDir ${remoteDir}: more than ${maxFiles} entries`);
        const r = posix.join(remote, e.filename);
        const l = join(local, e.filename);
        const kind = e.attrs.mode & 0o170000;
        if (kind === 0o040000) await walk(r, l);
        else if (kind === 0o100000) await writeFile(l, await this.getFile(r));
      }
    };
    await walk(remoteDir, localDir);
    return count;
  }
}
