/**
 * The provisioner's TFTP server at its limits: a client that never ACKs, a repeated request, per-client
 * and total caps, start failures, its transfer threads and the loss of one, and stop() with transfers
 * under way.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import { encodeRequest, parsePacket } from '../services/provisioner/tftp/packet.js';
import {
  startTftpServer,
  type TftpServer,
  type TftpServerOptions,
  type TftpTransfer,
} from '../services/provisioner/tftp/server.js';
import { TransferThreads, threadProgram } from '../services/provisioner/tftp/transfer-threads.js';
import { createLogger } from '../shared/log.js';
import { until } from './helpers/inventory.js';
import { silent } from './helpers/tftp-client.js';

const run = promisify(execFile);
const log = createLogger('tftp-limits-test', { level: process.env.TEST_LOG ?? 'silent' });
const MiB = 1024 * 1024;

let dir: string;
let root: string;
let server: TftpServer;
const files: Record<string, Buffer> = {};

beforeAll(async () => {
  ensureDebianPrograms(
    [{ candidates: ['/usr/bin/curl'], pkg: 'curl' }],
    'the TFTP tests run real clients',
    (l) => process.stderr.write(`[tftp-test] ${l}\n`),
  );
  dir = mkdtempSync(`${tmpdir()}/crowbar-tftp-limits-`);
  root = dir;
  for (const [name, size] of [
    ['small.bin', 3000],
    ['medium.bin', 2 * MiB + 77],
    ['big.bin', 16 * MiB],
  ] as const) {
    files[name] = randomBytes(size);
    writeFileSync(`${root}/${name}`, files[name]);
  }
  server = await serve();
});

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const output = (name: string) => readFileSync(`${dir}/${name}`);
/** A server of its own on the shared root, on 127.0.0.1 and any free port, with `o` changed. */
const serve = (o: Partial<TftpServerOptions> = {}) =>
  startTftpServer({ root, address: '127.0.0.1', port: 0, log, ...o });

describe('timeouts and limits', () => {
  const waitIdle = async (s: TftpServer) => {
    for (let i = 0; i < 100 && s.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 50));
  };

  it('a client that never ACKs: block 1 (or the OACK) sent 1 + retries times, then dropped', async () => {
    const done: TftpTransfer[] = [];
    const s = await serve({
      retries: 3,
      timeoutMs: 100,
      onTransfer: (t) => done.push(t),
    });
    try {
      const [plain, withOptions] = await Promise.all([
        silent(s.port, encodeRequest('rrq', 'medium.bin', 'octet'), 1000),
        silent(s.port, encodeRequest('rrq', 'medium.bin', 'octet', [['blksize', 1024]]), 1000),
      ]);
      expect(plain.map((m) => m.readUInt16BE(0) * 65536 + m.readUInt16BE(2))).toEqual(
        Array(4).fill(3 * 65536 + 1),
      );
      expect(withOptions.map((m) => parsePacket(m).op)).toEqual(['oack', 'oack', 'oack', 'oack']);
      await waitIdle(s);
      expect(s.stats.active).toBe(0);
      expect(s.stats.dropped.timeout).toBe(2);
      expect(done).toHaveLength(2);
      for (const t of done) expect(t).toMatchObject({ ok: false, error: 'no ACK after 3 retransmissions' });
    } finally {
      await s.stop();
    }
  });

  it('a repeated RRQ from the same port does not start a second transfer', async () => {
    const s = await serve({ retries: 0, timeoutMs: 300 });
    try {
      const got = await silent(s.port, encodeRequest('rrq', 'small.bin', 'octet'), 200, '127.0.0.1', 3);
      expect(got).toHaveLength(1);
      expect(s.stats.dropped.duplicate_request).toBe(2);
      await waitIdle(s);
    } finally {
      await s.stop();
    }
  });

  it('per-client and total limits: requests over them get nothing and are counted', async () => {
    const s = await serve({
      address: '0.0.0.0',
      maxTransfers: 3,
      maxPerClient: 2,
      retries: 1,
      timeoutMs: 400,
    });
    try {
      const rrq = encodeRequest('rrq', 'small.bin', 'octet');
      const got = await Promise.all([
        silent(s.port, rrq, 250),
        silent(s.port, rrq, 250),
        silent(s.port, rrq, 250),
        new Promise((r) => setTimeout(r, 50)).then(() => silent(s.port, rrq, 200, '127.0.0.2')),
        new Promise((r) => setTimeout(r, 100)).then(() => silent(s.port, rrq, 150, '127.0.0.3')),
      ]);
      expect(got.map((g) => g.length).sort()).toEqual([0, 0, 1, 1, 1]);
      expect(s.stats.dropped).toMatchObject({ client_busy: 1, busy: 1 });
      await waitIdle(s);
      expect(s.stats.active).toBe(0);
    } finally {
      await s.stop();
    }
  });

  it('a port in use or a root that is no directory fails the start', async () => {
    await expect(serve({ port: server.port })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    await expect(serve({ root: `${root}/small.bin` })).rejects.toThrow(/not a directory/);
  });

  it('transfers run on threads of their own (one per core, at most 4), or on the server thread with threads: 0', async () => {
    expect(server.threads).toBe(Math.min(4, availableParallelism()));
    const one = await serve({ threads: 0 });
    try {
      expect(one.threads).toBe(0);
      await run(
        'curl',
        ['-sS', '-o', `${dir}/curl-one`, '--tftp-blksize', '1468', `tftp://127.0.0.1:${one.port}/medium.bin`],
        {
          timeout: 60_000,
        },
      );
      expect(output('curl-one').equals(files['medium.bin']!)).toBe(true);
      expect(one.stats).toMatchObject({ served: 1, failed: 0, active: 0 });
    } finally {
      await one.stop();
    }
  });

  it('a transfer thread that dies fails its transfers; later ones run on the server thread', async () => {
    // The real thread program, which ends its thread (exit code 7) 100 ms into its first transfer.
    const crashing = `${threadProgram()}
require('node:worker_threads').parentPort.on('message', (m) => {
  if (m.type === 'start') setTimeout(() => process.exit(7), 100);
});`;
    const pool = await TransferThreads.start(1, log, crashing);
    expect(pool?.size).toBe(1);
    const done: TftpTransfer[] = [];
    const s = await serve({
      threads: pool,
      timeoutMs: 2000,
      onTransfer: (t) => done.push(t),
    });
    try {
      expect(s.threads).toBe(1);
      // A client that never ACKs keeps the transfer under way (block 1 resent every 2 s) when the thread dies.
      const got = await silent(s.port, encodeRequest('rrq', 'big.bin', 'octet'), 300);
      expect(got.map((m) => m.readUInt16BE(0))).toEqual([3]);
      await until('the transfer reported after its thread died', () => done.length > 0, 5000);
      expect(done).toMatchObject([
        { file: 'big.bin', ok: false, bytes: 0, error: 'transfer thread lost: exited with code 7' },
      ]);
      expect(s.threads).toBe(0);
      expect(s.stats).toMatchObject({ active: 0, failed: 1, dropped: { thread_lost: 1 } });
      await run('curl', ['-sS', '-o', `${dir}/curl-after`, `tftp://127.0.0.1:${s.port}/medium.bin`], {
        timeout: 60_000,
      });
      expect(output('curl-after').equals(files['medium.bin']!)).toBe(true);
      expect(s.stats).toMatchObject({ served: 1, active: 0 });
    } finally {
      await s.stop();
    }
  });

  it('stop() ends active transfers and reports them', async () => {
    const done: TftpTransfer[] = [];
    const s = await serve({
      onTransfer: (t) => done.push(t),
    });
    const got = silent(s.port, encodeRequest('rrq', 'big.bin', 'octet'), 200);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.stats.active).toBe(1);
    await s.stop();
    expect(s.stats.active).toBe(0);
    expect(done).toMatchObject([{ ok: false, error: 'server stopped' }]);
    expect((await got).length).toBe(1);
  });
});
