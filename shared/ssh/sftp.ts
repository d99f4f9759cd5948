import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type ssh2 from 'ssh2';
import { SshError } from './errors.js';

/** Bounds for directory copies so a runaway tree cannot fill the disk or loop forever. */
const maxFiles = 10_000;
const defaultMaxFileBytes = 64 * 1024 * 1024;

const wrap = (what: string) => (err: unknown) =>
  new SshError(`sftp ${what}: ${(err as Error).message}`, { cause: err });

/** One lazily opened SFTP channel per connection, with file and tree copies on top. */
export class SftpSession {
  private opening: Promise<ssh2.SFTPWrapper> | null = null;
  constructor(private readonly client: ssh2.Client) {}

  wrapper(): Promise<ssh2.SFTPWrapper> {
    this.opening ??= new Promise((resolve, reject) => {
      this.client.sftp((err, s) => (err ? reject(wrap('open')(err)) : resolve(s)));
    });
    const p = this.opening;
    p.catch(() => {
      this.opening = null;
    });
    return p;
  }

  close() {
    void this.opening?.then((s) => s.end()).catch(() => undefined);
  }

  async putFile(remotePath: string, content: string | Buffer, mode = 0o644): Promise<void> {
    const s = await this.wrapper();
    await new Promise<void>((resolve, reject) =>
      s.writeFile(remotePath, content, { mode }, (err) =>
        err ? reject(wrap(`write ${remotePath}`)(err)) : resolve(),
      ),
    );
  }

  async getFile(remotePath: string, maxBytes = defaultMaxFileBytes): Promise<Buffer> {
    const s = await this.wrapper();
    const st = await new Promise<ssh2.Stats>((resolve, reject) =>
      s.stat(remotePath, (err, st) => (err ? reject(wrap(`stat ${remotePath}`)(err)) : resolve(st))),
    );
    if (st.size > maxBytes)
      throw new SshError(`sftp read ${remotePath}: ${st.size} bytes exceeds ${maxBytes}`);
    return new Promise<Buffer>((resolve, reject) =>
      s.readFile(remotePath, (err, b) => (err ? reject(wrap(`read ${remotePath}`)(err)) : resolve(b))),
    );
  }

  private async mkdirp(s: ssh2.SFTPWrapper, dir: string): Promise<void> {
    const parts = posix.normalize(dir).split('/');
    let cur = dir.startsWith('/') ? '' : '.';
    for (const part of parts) {
      if (!part) continue;
      cur = `${cur}/${part}`;
      await new Promise<void>((resolve, reject) =>
        s.mkdir(cur, (err) => {
          if (!err) return resolve();
          // Already there (or not ours to create): check it is a directory.
          s.stat(cur, (e2, st) => (e2 || !st.isDirectory() ? reject(wrap(`mkdir ${cur}`)(err)) : resolve()));
        }),
      );
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
      const entries = await new Promise<ssh2.FileEntry[]>((resolve, reject) =>
        s.readdir(remote, (err, list) => (err ? reject(wrap(`readdir ${remote}`)(err)) : resolve(list))),
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
