import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.js';
import {
  connectSsh,
  generateKeyPair,
  HostKeyMismatchError,
  SshAuthError,
  SshCommandTimeoutError,
  SshConnectionRefusedError,
  SshTimeoutError,
  SshUnreachableError,
} from '../shared/ssh/index.js';
import { startSshd, type TestSshd } from './helpers/sshd.js';

const cluster = generateKeyPair('cluster');
let sshd: TestSshd;
const dirs: string[] = [];

beforeAll(async () => {
  sshd = await startSshd({ authorizedKeys: [cluster.publicKey] });
});
afterAll(async () => {
  await sshd?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const target = () => ({
  host: sshd.host,
  port: sshd.port,
  privateKey: cluster.privateKey,
  hostKey: sshd.hostKey,
  timeoutMs: 3000,
});

describe('shared/ssh against a real sshd', () => {
  it('logs in as root with the cluster key, runs a command, feeds stdin', async () => {
    const s = await connectSsh(target());
    try {
      const r = await s.exec('echo alive; id -u; echo oops >&2; exit 3');
      expect(r).toMatchObject({ code: 3, stdout: 'alive\n0\n', stderr: 'oops\n', truncated: false });
      const cat = await s.exec('cat', { stdin: 'from stdin' });
      expect(cat.stdout).toBe('from stdin');
    } finally {
      await s.end();
    }
  });

  it('bounds output and kills a command past its time', async () => {
    const s = await connectSsh(target());
    try {
      const big = await s.exec('head -c 100000 /dev/zero', { maxOutputBytes: 1000 });
      expect(big.stdout.length).toBe(1000);
      expect(big.truncated).toBe(true);
      const started = Date.now();
      await expect(s.exec('sleep 30', { timeoutMs: 300 })).rejects.toBeInstanceOf(SshCommandTimeoutError);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await s.end();
    }
  });

  it('copies files and trees both ways over sftp', async () => {
    const local = mkdtempSync(join(tmpdir(), 'ssh-test-'));
    dirs.push(local);
    const s = await connectSsh(target());
    try {
      const remote = `${local}/remote`;
      await s.exec(`mkdir -p ${remote}`);
      await s.putFile(`${remote}/a.txt`, 'hello');
      expect((await s.getFile(`${remote}/a.txt`)).toString()).toBe('hello');
      mkdirSync(join(local, 'src/sub'), { recursive: true });
      writeFileSync(join(local, 'src/x.sh'), '#!/bin/sh\necho x\n');
      writeFileSync(join(local, 'src/sub/y'), 'y');
      await s.putDir(join(local, 'src'), `${remote}/tree`);
      expect((await s.exec(`sh ${remote}/tree/x.sh`)).stdout).toBe('x\n');
      await s.getDir(`${remote}/tree`, join(local, 'back'));
      expect(readFileSync(join(local, 'back/sub/y'), 'utf8')).toBe('y');
      await expect(s.getFile(`${remote}/a.txt`, { maxBytes: 2 })).rejects.toThrow(/exceeds/);
    } finally {
      await s.end();
    }
  });

  it('refuses a server whose host key is not the pinned one', async () => {
    const other = generateKeyPair('not-the-host');
    const err = await connectSsh({ ...target(), hostKey: other.publicKey }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as Error).message).toContain('host key mismatch');
    expect((err as HostKeyMismatchError).reason).toBe('host key mismatch');
  });

  it('names a refused key, a malformed pinned key and a malformed private key', async () => {
    const stranger = generateKeyPair('stranger');
    await expect(connectSsh({ ...target(), privateKey: stranger.privateKey })).rejects.toBeInstanceOf(
      SshAuthError,
    );
    expect(() => connectSsh({ ...target(), hostKey: 'ssh-ed25519 nonsense' })).toThrow(ValidationError);
    expect(() => connectSsh({ ...target(), privateKey: 'xyz' })).toThrow(ValidationError);
  });

  it('says connection refused when sshd is stopped, and works again after start', async () => {
    // The helper holds sshd's own PID (exec chain), so stop() really stops the listener.
    expect(readFileSync(`/proc/${sshd.pid()}/comm`, 'utf8').trim()).toBe('sshd');
    await sshd.stop();
    try {
      await expect(connectSsh(target())).rejects.toBeInstanceOf(SshConnectionRefusedError);
    } finally {
      await sshd.start();
    }
    const s = await connectSsh(target());
    expect((await s.exec('true')).code).toBe(0);
    await s.end();
  });

  it('detects a rotated host key', async () => {
    const before = sshd.hostKey;
    const after = await sshd.rotateHostKey();
    expect(after).not.toBe(before);
    await expect(connectSsh({ ...target(), hostKey: before })).rejects.toBeInstanceOf(HostKeyMismatchError);
    const s = await connectSsh({ ...target(), hostKey: after });
    await s.end();
  });

  it('gives up on an address that never answers within its time limit', async () => {
    // 198.18.0.0/15 is blackholed by the test setup: nothing leaves the machine.
    const started = Date.now();
    const err = await connectSsh({ ...target(), host: '198.19.255.254', timeoutMs: 500 }).catch((e) => e);
    expect(err instanceof SshTimeoutError || err instanceof SshUnreachableError).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500);
  });
});
