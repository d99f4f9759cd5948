import ssh2 from 'ssh2';
import { ValidationError } from '../errors.js';
import {
  HostKeyMismatchError,
  SshAuthError,
  SshConnectionRefusedError,
  SshError,
  SshTimeoutError,
  SshUnreachableError,
} from './errors.js';
import { type ExecOptions, type ExecResult, execOn } from './exec.js';
import { hostKeyAlgorithms, parsePinnedKey } from './keys.js';
import { SftpSession } from './sftp.js';

const { Client } = ssh2;

export interface SshTarget {
  host: string;
  port?: number;
  username?: string;
  /** OpenSSH private key text. Never logged. */
  privateKey: string;
  /** Pinned OpenSSH public key line of the server, e.g. `ssh-ed25519 AAAA...`. */
  hostKey: string;
  /** Bound on TCP connect + handshake + auth. */
  timeoutMs?: number;
  /** Bound on each SFTP operation, plus a second per MiB it moves (default 30 s). */
  sftpTimeoutMs?: number;
}

export interface SshSession {
  readonly host: string;
  readonly port: number;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  putFile(remotePath: string, content: string | Buffer, opts?: { mode?: number }): Promise<void>;
  getFile(remotePath: string, opts?: { maxBytes?: number }): Promise<Buffer>;
  /** Copies a local directory tree to the server (created as needed). */
  putDir(localDir: string, remoteDir: string): Promise<number>;
  /** Copies a remote directory tree into a local directory; returns the number of files. */
  getDir(remoteDir: string, localDir: string): Promise<number>;
  /** Plain SFTP access for anything else. */
  sftp(): Promise<ssh2.SFTPWrapper>;
  end(): Promise<void>;
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

/** Turns ssh2's connection failures into our named errors; the verifier flag wins over anything else. */
function classify(err: Error & { level?: string }, where: string, keyRejected: boolean): SshError {
  if (keyRejected) return new HostKeyMismatchError(`host key mismatch at ${where}`, { cause: err });
  const code = errno(err);
  if (code === 'ECONNREFUSED')
    return new SshConnectionRefusedError(`connection refused by ${where}`, { cause: err });
  // EINVAL is what Linux answers for a blackhole route.
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL' || code === 'EINVAL')
    return new SshUnreachableError(`no route to ${where}`, { cause: err });
  if (err.level === 'client-timeout' || code === 'ETIMEDOUT')
    return new SshTimeoutError(`ssh timeout at ${where}`, { cause: err });
  if (err.level === 'client-authentication')
    return new SshAuthError(`ssh auth failed at ${where} (key refused)`, { cause: err });
  return new SshError(`ssh error at ${where}: ${err.message}`, { cause: err });
}

/**
 * Opens an SSH connection whose server must present exactly the pinned host key. Resolves once
 * authenticated; rejects with HostKeyMismatchError, SshConnectionRefusedError, SshUnreachableError,
 * SshTimeoutError or SshAuthError.
 */
export function connectSsh(target: SshTarget): Promise<SshSession> {
  const pinned = parsePinnedKey(target.hostKey);
  if (!target.privateKey.includes('PRIVATE KEY'))
    throw new ValidationError('privateKey must be an OpenSSH private key', { field: 'privateKey' });
  const port = target.port ?? 22;
  const timeoutMs = target.timeoutMs ?? 10_000;
  const where = target.host.includes(':') ? `[${target.host}]:${port}` : `${target.host}:${port}`;
  const client = new Client();
  let keyRejected = false;

  return new Promise<SshSession>((resolve, reject) => {
    let settled = false;
    const fail = (e: SshError) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      client.end();
      client.destroy();
      reject(e);
    };
    // ssh2's readyTimeout does not cover every stall (a blackholed SYN with a long OS timeout).
    const guard = setTimeout(() => fail(new SshTimeoutError(`ssh timeout at ${where}`)), timeoutMs + 500);
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      resolve(openSession(client, target.host, port, target.sftpTimeoutMs));
    });
    client.on('error', (err: Error & { level?: string }) => fail(classify(err, where, keyRejected)));
    client.once('close', () => fail(new SshError(`connection to ${where} closed during handshake`)));
    try {
      client.connect({
        host: target.host,
        port,
        username: target.username ?? 'root',
        privateKey: target.privateKey,
        readyTimeout: timeoutMs,
        keepaliveInterval: 0,
        algorithms: { serverHostKey: hostKeyAlgorithms(pinned.type) as ssh2.ServerHostKeyAlgorithm[] },
        hostVerifier: (key: Buffer) => {
          keyRejected = !key.equals(pinned.blob);
          return !keyRejected;
        },
      });
    } catch (err) {
      // ssh2 throws synchronously for an unparsable private key.
      fail(new SshAuthError(`cannot use the private key: ${(err as Error).message}`, { cause: err }));
    }
  });
}

function openSession(client: ssh2.Client, host: string, port: number, sftpTimeoutMs?: number): SshSession {
  let closed = false;
  client.on('close', () => {
    closed = true;
  });
  // Errors after the handshake surface through the pending operation; keep the emitter from throwing.
  client.on('error', () => undefined);
  const sftp = new SftpSession(client, sftpTimeoutMs);
  return {
    host,
    port,
    exec: (command, opts) => {
      if (closed) return Promise.reject(new SshError(`connection to ${host}:${port} is closed`));
      return execOn(client, command, opts);
    },
    putFile: (p, content, opts) => sftp.putFile(p, content, opts?.mode),
    getFile: (p, opts) => sftp.getFile(p, opts?.maxBytes),
    putDir: (l, r) => sftp.putDir(l, r),
    getDir: (r, l) => sftp.getDir(r, l),
    sftp: () => sftp.wrapper(),
    end: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        client.once('close', () => resolve());
        sftp.close();
        client.end();
        // A peer that never answers our close must not hang the caller.
        setTimeout(() => {
          client.destroy();
          resolve();
        }, 2000).unref();
      }),
  };
}
