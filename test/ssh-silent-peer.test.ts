import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectSsh, generateKeyPair, SshCommandTimeoutError, SshTimeoutError } from '../shared/ssh/index.js';

/**
 * A peer that logs us in and then answers nothing more — what a node looks like whose network went away
 * between the login and the command (the lab's nodes at the end of test/lab-nodes.test.ts, which held
 * the aliveness probe's stop for minutes). An ssh2 server on loopback that accepts the login and never
 * answers a session request: the command's timeout must cover the wait for its channel.
 */
const hostKey = generateKeyPair('silent-host');
const client = generateKeyPair('silent-client');
let server: ssh2.Server;
let port = 0;
let sessionsAsked = 0;
// A second peer opens SFTP channels and then answers none of the requests made on them.
let mute: ssh2.Server;
let mutePort = 0;
let sftpOpened = 0;
const sftpAsked: string[] = [];

async function listen(srv: ssh2.Server) {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return (srv.address() as AddressInfo).port;
}

beforeAll(async () => {
  server = new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (c) => {
    c.on('authentication', (ctx) => ctx.accept());
    c.on('ready', () => c.on('session', () => void sessionsAsked++));
    c.on('error', () => undefined);
  });
  port = await listen(server);
  mute = new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (c) => {
    c.on('authentication', (ctx) => ctx.accept());
    c.on('ready', () =>
      c.on('session', (accept) =>
        accept().on('sftp', (acceptSftp) => {
          sftpOpened++;
          const sftp = acceptSftp();
          for (const req of ['OPEN', 'STAT', 'MKDIR', 'OPENDIR'] as const)
            sftp.on(req, (_id: number, path: string) => void sftpAsked.push(`${req} ${path}`));
        }),
      ),
    );
    c.on('error', () => undefined);
  });
  mutePort = await listen(mute);
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise<void>((r) => mute.close(() => r()));
});

const login = (p: number, sftpTimeoutMs?: number) =>
  connectSsh({
    host: '127.0.0.1',
    port: p,
    username: 'root',
    privateKey: client.privateKey,
    hostKey: hostKey.publicKey,
    timeoutMs: 5000,
    ...(sftpTimeoutMs === undefined ? {} : { sftpTimeoutMs }),
  });

it('a command whose channel is never opened times out within its allowance', async () => {
  const session = await login(port);
  try {
    const t0 = Date.now();
    const r = session.exec('echo alive', { timeoutMs: 500 });
    await expect(r).rejects.toBeInstanceOf(SshCommandTimeoutError);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(sessionsAsked).toBe(1);
  } finally {
    await session.end();
  }
});

it('an SFTP channel that is never opened times out, and so does each later try', async () => {
  const session = await login(port, 500);
  try {
    const before = sessionsAsked;
    await expect(session.putFile('/tmp/x', 'x')).rejects.toThrow(/sftp open: no answer in 500 ms/);
    // The stuck channel is not waited on again: the next operation asks for a new one.
    await expect(session.getFile('/tmp/x')).rejects.toBeInstanceOf(SshTimeoutError);
    expect(sessionsAsked - before).toBe(2);
  } finally {
    await session.end();
  }
});

it('SFTP requests that are never answered time out one by one, each on a fresh channel', async () => {
  const session = await login(mutePort, 500);
  const local = mkdtempSync(join(tmpdir(), 'crowbar-silent-sftp-'));
  try {
    await expect(session.putFile('/tmp/job/runner', 'echo hi')).rejects.toThrow(
      /sftp write \/tmp\/job\/runner: no answer in 500 ms/,
    );
    await expect(session.getFile('/tmp/job/out')).rejects.toThrow(/sftp stat \/tmp\/job\/out: no answer/);
    await expect(session.getDir('/tmp/job', local)).rejects.toThrow(/sftp readdir \/tmp\/job: no answer/);
    expect(sftpAsked).toEqual(['OPEN /tmp/job/runner', 'STAT /tmp/job/out', 'OPENDIR /tmp/job']);
    expect(sftpOpened).toBe(3);
  } finally {
    await session.end();
    rmSync(local, { recursive: true, force: true });
  }
});
