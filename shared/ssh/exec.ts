import type ssh2 from 'ssh2';
import { SshCommandTimeoutError, SshError } from './errors.js';

export interface ExecOptions {
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  stdin?: string | Buffer;
  /** Per stream; output past this is dropped and `truncated` set (default 1 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  /** Exit code, or null when the command died of a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** Collects a stream up to a byte bound so a chatty command cannot exhaust memory. */
class Bounded {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(b: Buffer) {
    const room = this.max - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = b.length > room ? b.subarray(0, room) : b;
    if (part.length < b.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }
  text() {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Runs one command on an authenticated connection. */
export function execOn(client: ssh2.Client, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const max = opts.maxOutputBytes ?? 1024 * 1024;
  return new Promise<ExecResult>((resolve, reject) => {
    let done = false;
    let stream: ssh2.ClientChannel | null = null;
    // Started before the channel is asked for: a peer that vanished after the login never answers the
    // channel request, and the command's allowance covers that wait too.
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      // Best effort: OpenSSH honours signal requests; closing the channel stops it otherwise.
      stream?.signal('KILL');
      stream?.close();
      reject(new SshCommandTimeoutError(`command timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    client.exec(command, (err, channel) => {
      if (done) {
        channel?.close();
        return;
      }
      if (err) {
        done = true;
        clearTimeout(timer);
        return reject(new SshError(`cannot start command: ${err.message}`, { cause: err }));
      }
      stream = channel;
      const out = new Bounded(max);
      const errOut = new Bounded(max);
      let code: number | null = null;
      let signal: string | null = null;
      stream.on('data', (b: Buffer) => out.push(b));
      stream.stderr.on('data', (b: Buffer) => errOut.push(b));
      stream.on('exit', (c: number | null, s?: string) => {
        code = c ?? null;
        signal = s ?? null;
      });
      stream.on('close', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({
          code,
          signal,
          stdout: out.text(),
          stderr: errOut.text(),
          truncated: out.truncated || errOut.truncated,
        });
      });
      if (opts.stdin !== undefined) stream.end(opts.stdin);
      else stream.end();
    });
  });
}
