/**
 * Mutation fuzzing over loopback: 50,000 datagrams derived from valid TFTP packets by a seeded generator
 * (TFTP_FUZZ_SEED replays a run) go to the server port and to the ports of transfers the fuzzing sockets
 * set off, at a bounded rate. Every reply must be a well-formed TFTP packet, the process must not crash,
 * and afterwards real clients are served byte-identical files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import {
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  parsePacket,
} from '../services/provisioner/tftp/packet.js';
import { startTftpServer, type TftpServer } from '../services/provisioner/tftp/server.js';
import { createLogger } from '../shared/log.js';
import { prng } from './helpers/prng.js';

const run = promisify(execFile);
const log = createLogger('tftp-fuzz-test', { level: process.env.TEST_LOG ?? 'silent' });
const SEED = Number(process.env.TFTP_FUZZ_SEED ?? 20261201);
const DATAGRAMS = 50_000;
const SOCKETS = 8;
const MARKER = 'OUTSIDE-THE-ROOT-fuzz';

const { int, pick, bytes } = prng(SEED);

const names = [
  'small.bin',
  'medium.bin',
  '/small.bin',
  'sub/inner.bin',
  '../outside/secret.txt',
  'link-out',
  'sub',
];
const seeds: Buffer[] = [
  ...names.flatMap((n) => [
    encodeRequest('rrq', n, 'octet'),
    encodeRequest('rrq', n, 'netascii', [['tsize', 0]]),
    encodeRequest('rrq', n, 'octet', [
      ['blksize', 1468],
      ['tsize', 0],
      ['timeout', 1],
      ['windowsize', 4],
    ]),
  ]),
  encodeRequest('wrq', 'up.bin', 'octet', [['blksize', 512]]),
  encodeAck(0),
  encodeAck(1),
  encodeData(1, randomBytes(32)),
  encodeError(0, 'fuzz'),
  encodeOack([['blksize', 512]]),
];
const numbers = ['0', '7', '8', '512', '65464', '65465', '4294967296', '-1', '', 'x', '1e3', '00000000001'];

function mutate(src: Buffer): Buffer {
  let b: Buffer = Buffer.from(src);
  const ops = 1 + int(4);
  for (let i = 0; i < ops; i++) {
    switch (int(9)) {
      case 0: // flip bits
        for (let k = 0; k < 1 + int(8); k++) if (b.length) b[int(b.length)]! ^= 1 << int(8);
        break;
      case 1: // a NUL, or a byte, anywhere
        if (b.length) b[int(b.length)] = int(3) === 0 ? 0 : int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, int(b.length + 1));
        break;
      case 3: // append junk or padding
        b = Buffer.concat([b, int(2) ? Buffer.alloc(1 + int(40)) : bytes(1 + int(40))]);
        break;
      case 4: // opcode
        if (b.length >= 2) b.writeUInt16BE(int(4) === 0 ? int(65536) : int(8), 0);
        break;
      case 5: // block number
        if (b.length >= 4) b.writeUInt16BE(int(65536), 2);
        break;
      case 6: // an option value swapped for an edge case
        b = Buffer.from(
          b
            .toString('latin1')
            .replace(/(blksize|tsize|timeout|windowsize)\0[^\0]*/i, (_m, k) => `${k}\0${pick(numbers)}`),
          'latin1',
        );
        break;
      case 7: // path tricks in the name
        b = Buffer.concat([
          b.subarray(0, 2),
          Buffer.from(pick(['../', '/', '\\', '//', '.\0', '..']), 'latin1'),
          b.subarray(2),
        ]);
        break;
      default: // pure noise
        b = bytes(int(600));
    }
  }
  return b;
}
let dir: string;
let root: string;
let server: TftpServer;
const files: Record<string, Buffer> = {};

beforeAll(async () => {
  ensureDebianPrograms(
    [
      { candidates: ['/usr/bin/tftp'], pkg: 'tftp-hpa' },
      { candidates: ['/usr/bin/curl'], pkg: 'curl' },
    ],
    'the TFTP fuzz test ends with real clients',
    (l) => process.stderr.write(`[tftp-fuzz] ${l}\n`),
  );
  dir = mkdtempSync(`${tmpdir()}/crowbar-tftp-fuzz-`);
  root = `${dir}/root`;
  mkdirSync(`${root}/sub`, { recursive: true });
  mkdirSync(`${dir}/outside`);
  writeFileSync(`${dir}/outside/secret.txt`, MARKER);
  symlinkSync('../outside/secret.txt', `${root}/link-out`);
  for (const [name, size] of [
    ['small.bin', 3000],
    ['medium.bin', 300_000],
    ['sub/inner.bin', 100],
  ] as const) {
    files[name] = randomBytes(size);
    writeFileSync(`${root}/${name}`, files[name]!);
  }
  server = await startTftpServer({
    root,
    address: '127.0.0.1',
    port: 0,
    log,
    retries: 1,
    timeoutMs: 150,
    maxTransfers: 64,
  });
});

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('tftp fuzz', () => {
  it(`survives ${DATAGRAMS} mutated datagrams and answers only with well-formed packets`, async () => {
    const socks: Socket[] = [];
    /** Transfer ports that wrote to each fuzzing socket: targets for mutated ACKs and ERRORs. */
    const targets: number[][] = [];
    let replies = 0;
    let malformed = 0;
    let marker = 0;
    for (let i = 0; i < SOCKETS; i++) {
      const s = createSocket('udp4');
      // An address of its own on loopback: a stray datagram from another test on this machine (a
      // retransmission to a port since reused) cannot reach these sockets and count as our server's.
      await new Promise<void>((r) => s.bind(0, '127.0.0.77', r));
      const mine: number[] = [];
      s.on('message', (m, rinfo) => {
        replies++;
        if (m.includes(MARKER)) marker++;
        try {
          const p = parsePacket(m);
          if (!['data', 'error', 'oack'].includes(p.op)) malformed++;
          if (rinfo.port !== server.port && !mine.includes(rinfo.port)) {
            mine.push(rinfo.port);
            if (mine.length > 16) mine.shift();
          }
        } catch {
          malformed++;
        }
      });
      socks.push(s);
      targets.push(mine);
    }
    const deadline = Date.now() + 45_000;
    let sent = 0;
    while (sent < DATAGRAMS && Date.now() < deadline) {
      for (let i = 0; i < 250 && sent < DATAGRAMS; i++, sent++) {
        const k = int(SOCKETS);
        const mine = targets[k]!;
        const toTransfer = mine.length > 0 && int(3) === 0;
        const p = toTransfer
          ? mutate(pick([encodeAck(int(3)), encodeError(int(9), 'x'), seeds[int(seeds.length)]!]))
          : mutate(pick(seeds));
        if (p.length === 0) continue; // an empty datagram cannot be sent
        socks[k]!.send(p, toTransfer ? pick(mine) : server.port, '127.0.0.1');
      }
      // Bounded rate: the kernel must not drop what we mean to test.
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const s of socks) s.close();
    expect(sent).toBe(DATAGRAMS);
    expect(marker).toBe(0);
    expect(malformed).toBe(0);
    expect(replies).toBeGreaterThan(1000);
    const dropped = Object.values(server.stats.dropped).reduce((a, b) => a + b, 0);
    expect(server.stats.requests).toBeGreaterThan(1000);
    expect(dropped).toBeGreaterThan(1000);
    expect(server.stats.dropped.internal ?? 0).toBe(0);
    // Every transfer the fuzzers set off is timed out and gone.
    // (Bounded at 20 s: on a loaded CI machine the retransmission timers run late.)
    for (let i = 0; i < 200 && server.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(server.stats.active).toBe(0);
  }, 90_000);

  it('then serves real clients correctly', async () => {
    await run(
      'tftp',
      ['127.0.0.1', String(server.port), '-m', 'binary', '-c', 'get', 'medium.bin', 'out-hpa'],
      {
        cwd: dir,
        timeout: 30_000,
      },
    );
    expect(readFileSync(`${dir}/out-hpa`).equals(files['medium.bin']!)).toBe(true);
    await run(
      'curl',
      ['-sS', '-o', `${dir}/out-curl`, '--tftp-blksize', '1468', `tftp://127.0.0.1:${server.port}/small.bin`],
      {
        timeout: 30_000,
      },
    );
    expect(readFileSync(`${dir}/out-curl`).equals(files['small.bin']!)).toBe(true);
  });
});
