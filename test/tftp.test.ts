/**
 * The provisioner's TFTP server against real clients (tftp-hpa, curl, busybox) and our own dgram client
 * where none of those can: windowsize, loss, duplicate ACKs, a client that never ACKs, exact error codes.
 * The boot root sits next to an `outside` directory whose file carries a marker that must never arrive.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import {
  ErrorCode,
  encodeAck,
  encodeRequest,
  fromNetascii,
  parsePacket,
  toNetascii,
} from '../services/provisioner/tftp/packet.js';
import { startTftpServer, type TftpServer, type TftpTransfer } from '../services/provisioner/tftp/server.js';
import { createLogger } from '../shared/log.js';

const run = promisify(execFile);
const log = createLogger('tftp-test', { level: process.env.TEST_LOG ?? 'silent' });
const MARKER = 'OUTSIDE-THE-ROOT-7f3a9c';
const MiB = 1024 * 1024;

let dir: string;
let root: string;
let server: TftpServer;
const transfers: TftpTransfer[] = [];
const files: Record<string, Buffer> = {};
/** Every payload any client got in this file, checked for the marker at the end. */
const received: Buffer[] = [];

beforeAll(async () => {
  ensureDebianPrograms(
    [
      { candidates: ['/usr/bin/tftp'], pkg: 'tftp-hpa' },
      { candidates: ['/usr/bin/curl'], pkg: 'curl' },
      { candidates: ['/usr/bin/busybox', '/bin/busybox'], pkg: 'busybox' },
    ],
    'the TFTP tests run real clients',
    (l) => process.stderr.write(`[tftp-test] ${l}\n`),
  );
  dir = mkdtempSync(`${tmpdir()}/crowbar-tftp-`);
  root = `${dir}/root`;
  mkdirSync(`${root}/sub/dir`, { recursive: true });
  mkdirSync(`${dir}/outside`);
  writeFileSync(`${dir}/outside/secret.txt`, `${MARKER}\n`.repeat(100));
  const put = (name: string, data: Buffer) => {
    files[name] = data;
    writeFileSync(`${root}/${name}`, data);
  };
  put('small.bin', randomBytes(3000));
  put('exact.bin', randomBytes(1024));
  put('empty.bin', Buffer.alloc(0));
  put('medium.bin', randomBytes(2 * MiB + 77));
  put('big.bin', randomBytes(16 * MiB));
  // > 65535 blocks of 512: the block number rolls over.
  put('huge.bin', randomBytes(33 * MiB + 123));
  put('text.txt', Buffer.from('#!ipxe\nchain http://10.0.0.1/boot\r\nbare\rcr\n\n'.repeat(400)));
  put('sub/inner.bin', randomBytes(700));
  symlinkSync('../small.bin', `${root}/sub/link-in`);
  symlinkSync('../outside/secret.txt', `${root}/link-out`);
  symlinkSync(`${dir}/outside/secret.txt`, `${root}/abs-link-out`);
  symlinkSync('../outside', `${root}/dir-out`);
  await run('mkfifo', [`${root}/fifo`]);
  server = await startTftpServer({
    root,
    address: '127.0.0.1',
    port: 0,
    log,
    onTransfer: (t) => transfers.push(t),
  });
});

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---- our own client: RFC 1350 + options + RFC 7440 windows, with loss and duplicate ACKs on demand ----

interface Fetch {
  data: Buffer;
  error: { code: number; message: string } | null;
  oack: Record<string, string> | null;
  /** Wire block numbers of DATA packets, in arrival order, duplicates included. */
  blocks: number[];
}

interface FetchOptions {
  mode?: string;
  options?: [string, string | number][];
  /** Sent as the request instead of one built from the arguments. */
  raw?: Buffer;
  /** Pretend the nth DATA packet (counted from 0) never arrived. */
  lose?: (n: number) => boolean;
  duplicateAcks?: boolean;
  /** Resend the last ACK after this much silence (RFC 7440 receivers do). */
  idleMs?: number;
}

async function bound(address = '127.0.0.1'): Promise<Socket> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, address, r));
  return sock;
}

async function fetchTftp(file: string, o: FetchOptions = {}, port = server.port): Promise<Fetch> {
  const sock = await bound();
  const out: Fetch = { data: Buffer.alloc(0), error: null, oack: null, blocks: [] };
  const parts: Buffer[] = [];
  let blksize = 512;
  let windowsize = 1;
  let good = 0; // last in-order block, unwrapped
  let inWindow = 0;
  let lastAck: Buffer | null = null;
  let dallying = false;
  let tid = 0;
  let n = 0;
  const request = o.raw ?? encodeRequest('rrq', file, o.mode ?? 'octet', o.options ?? []);
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`fetch ${file}: no end within 60 s`)), 60_000);
      const end = () => {
        clearTimeout(deadline);
        clearInterval(idle);
        resolve();
      };
      let heard = Date.now();
      /** `then` runs once the datagram is out (closing the socket before that would lose it). */
      const ack = (block: number, then?: () => void) => {
        lastAck = encodeAck(block);
        if (o.duplicateAcks) sock.send(lastAck, tid, '127.0.0.1');
        sock.send(lastAck, tid, '127.0.0.1', then);
      };
      const idle = setInterval(() => {
        if (Date.now() - heard < (o.idleMs ?? 300)) return;
        heard = Date.now();
        if (lastAck && tid) sock.send(lastAck, tid);
      }, 20);
      sock.on('message', (m, rinfo) => {
        if (tid === 0) tid = rinfo.port;
        if (rinfo.port !== tid) return;
        heard = Date.now();
        const p = parsePacket(m);
        if (p.op === 'error') {
          out.error = { code: p.code, message: p.message };
          end();
        } else if (p.op === 'oack') {
          if (out.oack) return;
          out.oack = Object.fromEntries(p.options);
          blksize = Number(out.oack.blksize ?? 512);
          windowsize = Number(out.oack.windowsize ?? 1);
          ack(0);
        } else if (p.op === 'data') {
          if (dallying) {
            if (lastAck) sock.send(lastAck, tid, '127.0.0.1');
            return;
          }
          if (o.lose?.(n++)) return;
          out.blocks.push(p.block);
          if (p.block !== ((good + 1) & 0xffff)) {
            // Out of order or a duplicate: tell the server where we are (once per gap).
            if (inWindow !== -1) ack(good);
            inWindow = -1;
            return;
          }
          good++;
          parts.push(Buffer.from(p.data));
          inWindow = inWindow === -1 ? 1 : inWindow + 1;
          // RFC 1350 §6: the receiver of the last block dallies, re-ACKing a resent block, so a
          // retransmission racing its final ACK is not answered by a closed port.
          if (p.data.length < blksize)
            ack(good, () => {
              dallying = true;
              setTimeout(end, 250);
            });
          else if (inWindow >= windowsize) {
            ack(good);
            inWindow = 0;
          }
        }
      });
      sock.send(request, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
  out.data = Buffer.concat(parts);
  received.push(out.data);
  return out;
}

/** The server's report of a transfer, which follows the client's last ACK by a moment. */
async function reported(match: (t: TftpTransfer) => boolean): Promise<TftpTransfer | undefined> {
  for (let i = 0; i < 50 && !transfers.some(match); i++) await new Promise((r) => setTimeout(r, 20));
  return transfers.find(match);
}

const tftpHpa = (args: string[]) =>
  run('tftp', ['127.0.0.1', String(server.port), ...args], { cwd: dir, timeout: 120_000, encoding: 'utf8' });
const output = (name: string) => {
  const b = readFileSync(`${dir}/${name}`);
  received.push(b);
  return b;
};

describe('real clients', () => {
  it('tftp-hpa: a small file, RFC 1350 without options, and a leading slash', async () => {
    await tftpHpa(['-m', 'binary', '-c', 'get', 'small.bin', 'hpa-small']);
    expect(output('hpa-small').equals(files['small.bin']!)).toBe(true);
    await tftpHpa(['-m', 'binary', '-c', 'get', '/sub/inner.bin', 'hpa-inner']);
    expect(output('hpa-inner').equals(files['sub/inner.bin']!)).toBe(true);
  });

  it('curl: blksize 1468 on the 16 MiB file, tsize in the OACK', async () => {
    const { stderr } = await run(
      'curl',
      [
        '-v',
        '-sS',
        '-o',
        `${dir}/curl-big`,
        '--tftp-blksize',
        '1468',
        `tftp://127.0.0.1:${server.port}/big.bin`,
      ],
      { timeout: 120_000, encoding: 'utf8' },
    );
    expect(output('curl-big').equals(files['big.bin']!)).toBe(true);
    expect(stderr).toMatch(/tsize/);
    expect(stderr).toContain(String(16 * MiB));
    const t = await reported((x) => x.file === 'big.bin' && x.ok);
    expect(t).toMatchObject({ client: '127.0.0.1', bytes: 16 * MiB, error: null });
    expect(t!.options).toMatchObject({ blksize: 1468, tsize: 16 * MiB });
  });

  it('busybox: blksize 1468 on the 16 MiB file, and the small files', async () => {
    const bb = (remote: string, local: string, blk: number) =>
      run(
        'busybox',
        [
          'tftp',
          '-g',
          '-r',
          remote,
          '-l',
          `${dir}/${local}`,
          '-b',
          String(blk),
          '127.0.0.1',
          String(server.port),
        ],
        {
          timeout: 120_000,
        },
      );
    await bb('big.bin', 'bb-big', 1468);
    expect(output('bb-big').equals(files['big.bin']!)).toBe(true);
    for (const f of ['exact.bin', 'empty.bin', 'small.bin']) {
      await bb(f, `bb-${f}`, 512);
      expect(output(`bb-${f}`).equals(files[f]!), f).toBe(true);
    }
  });

  it('tftp-hpa: the 16 MiB file at the default 512, and 33 MiB (67,830 blocks: rollover past 65535)', async () => {
    await tftpHpa(['-m', 'binary', '-c', 'get', 'big.bin', 'hpa-big']);
    expect(output('hpa-big').equals(files['big.bin']!)).toBe(true);
    await tftpHpa(['-m', 'binary', '-c', 'get', 'huge.bin', 'hpa-huge']);
    expect(output('hpa-huge').equals(files['huge.bin']!)).toBe(true);
  });

  it('tftp-hpa: netascii turns LF into CR LF and back', async () => {
    await tftpHpa(['-m', 'netascii', '-c', 'get', 'text.txt', 'hpa-text']);
    expect(output('hpa-text').equals(files['text.txt']!)).toBe(true);
  });

  it('tftp-hpa: WRQ is refused', async () => {
    writeFileSync(`${dir}/upload`, 'x');
    const r = await tftpHpa(['-m', 'binary', '-c', 'put', 'upload', 'upload.bin']).catch((e) => e);
    expect(`${r.stdout}${r.stderr}`).toContain('writes are not allowed');
  });

  it('tftp-hpa and curl: names that point outside get an error and nothing of the outside file', async () => {
    for (const name of [
      '../outside/secret.txt',
      'link-out',
      'dir-out/secret.txt',
      `${dir}/outside/secret.txt`,
    ]) {
      const r = await tftpHpa(['-m', 'binary', '-c', 'get', name, 'hpa-escape']).catch((e) => e);
      expect(`${r.stdout}${r.stderr}`, name).toMatch(/Error code [12]/);
    }
    const r = await run('curl', [
      '-sS',
      '-o',
      `${dir}/curl-escape`,
      `tftp://127.0.0.1:${server.port}/link-out`,
    ]).catch((e) => e);
    expect(r.code).not.toBe(0);
  });
});

describe('our client', () => {
  it('windowsize 16 and tsize: byte-identical, OACK as asked', async () => {
    const r = await fetchTftp('big.bin', {
      options: [
        ['blksize', 1468],
        ['tsize', 0],
        ['windowsize', 16],
      ],
    });
    expect(r.error).toBeNull();
    expect(r.oack).toEqual({ blksize: '1468', tsize: String(16 * MiB), windowsize: '16' });
    expect(r.data.equals(files['big.bin']!)).toBe(true);
    expect(r.blocks.length).toBe(Math.floor((16 * MiB) / 1468) + 1);
    const t = await reported((x) => x.options.windowsize === 16);
    expect(t).toMatchObject({
      ok: true,
      bytes: 16 * MiB,
      options: { blksize: 1468, tsize: 16 * MiB, windowsize: 16 },
    });
  });

  it('windowsize with lost packets: the client ACKs the last good block, the server resends from there', async () => {
    const r = await fetchTftp('medium.bin', {
      options: [
        ['blksize', 1024],
        ['windowsize', 8],
      ],
      lose: (n) => n % 97 === 13,
      idleMs: 50,
    });
    expect(r.data.equals(files['medium.bin']!)).toBe(true);
  });

  it('block numbers roll over from 65535 to 0', async () => {
    const r = await fetchTftp('huge.bin', { options: [['windowsize', 64]] });
    expect(r.data.equals(files['huge.bin']!)).toBe(true);
    const at = r.blocks.indexOf(65535);
    expect(r.blocks.slice(at, at + 3)).toEqual([65535, 0, 1]);
    expect(r.blocks.length).toBe(Math.floor(files['huge.bin']!.length / 512) + 1);
  });

  it('duplicate ACKs do not make the server send anything twice (no sorcerer’s apprentice)', async () => {
    const r = await fetchTftp('medium.bin', { duplicateAcks: true });
    expect(r.data.equals(files['medium.bin']!)).toBe(true);
    expect(r.blocks.length).toBe(Math.floor(files['medium.bin']!.length / 512) + 1);
    expect(new Set(r.blocks).size).toBe(r.blocks.length);
  });

  it.each([
    ['exact.bin', 3],
    ['empty.bin', 1],
  ])('%s ends with a short (empty) block: %i blocks', async (f, blocks) => {
    const r = await fetchTftp(f);
    expect(r.data.equals(files[f]!)).toBe(true);
    expect(r.blocks.length).toBe(blocks);
  });

  it('netascii on the wire; no tsize offered for it', async () => {
    const r = await fetchTftp('text.txt', { mode: 'netascii', options: [['tsize', 0]] });
    expect(r.oack).toBeNull();
    expect(r.data.equals(toNetascii(files['text.txt']!))).toBe(true);
    expect(fromNetascii(r.data).equals(files['text.txt']!)).toBe(true);
  });

  it('names under the root: leading slashes, dot segments, a symlink inside', async () => {
    for (const [name, f] of [
      ['//sub/./inner.bin', 'sub/inner.bin'],
      ['sub/link-in', 'small.bin'],
      ['./small.bin', 'small.bin'],
    ] as const) {
      const r = await fetchTftp(name);
      expect(r.error, name).toBeNull();
      expect(r.data.equals(files[f]!), name).toBe(true);
    }
  });

  it.each([
    ['../outside/secret.txt', ErrorCode.ACCESS_VIOLATION, 'bad_path'],
    ['/../outside/secret.txt', ErrorCode.ACCESS_VIOLATION, 'bad_path'],
    ['sub/../../outside/secret.txt', ErrorCode.ACCESS_VIOLATION, 'bad_path'],
    ['sub/../small.bin', ErrorCode.ACCESS_VIOLATION, 'bad_path'],
    ['..\\outside\\secret.txt', ErrorCode.ACCESS_VIOLATION, 'bad_path'],
    ['link-out', ErrorCode.ACCESS_VIOLATION, 'outside_root'],
    ['abs-link-out', ErrorCode.ACCESS_VIOLATION, 'outside_root'],
    ['dir-out/secret.txt', ErrorCode.ACCESS_VIOLATION, 'outside_root'],
    ['/etc/passwd', ErrorCode.FILE_NOT_FOUND, 'not_found'],
    ['OUTSIDE/secret.txt', ErrorCode.FILE_NOT_FOUND, 'not_found'],
    ['small.bin/x', ErrorCode.FILE_NOT_FOUND, 'not_found'],
    ['sub', ErrorCode.ACCESS_VIOLATION, 'not_regular'],
    ['sub/dir/', ErrorCode.ACCESS_VIOLATION, 'not_regular'],
    ['/', ErrorCode.ACCESS_VIOLATION, 'not_regular'],
    ['fifo', ErrorCode.ACCESS_VIOLATION, 'not_regular'],
  ])('%s: ERROR %i (%s)', async (name, code, reason) => {
    const before = server.stats.dropped[reason] ?? 0;
    const r = await fetchTftp(name);
    expect(r.error?.code).toBe(code);
    expect(r.blocks).toEqual([]);
    expect(server.stats.dropped[reason]).toBe(before + 1);
    expect(transfers.at(-1)).toMatchObject({ file: name, ok: false, bytes: 0 });
  });

  it('the outside file by its absolute path is looked up under the root', async () => {
    const r = await fetchTftp(`${dir}/outside/secret.txt`);
    expect(r.error?.code).toBe(ErrorCode.FILE_NOT_FOUND);
  });

  it('a NUL inside the name: ERROR, never the part after it', async () => {
    const raw = Buffer.from('\0\x01small.bin\0../outside/secret.txt\0octet\0', 'latin1');
    const r = await fetchTftp('', { raw });
    expect(r.error?.code).toBe(ErrorCode.ILLEGAL_OPERATION);
  });

  it.each([
    ['blksize', '7'],
    ['blksize', '65465'],
    ['timeout', '0'],
    ['timeout', '256'],
    ['windowsize', '0'],
    ['windowsize', '65536'],
    ['blksize', 'many'],
  ])('%s=%s: ERROR 8', async (name, value) => {
    const r = await fetchTftp('small.bin', { options: [[name, value]] });
    expect(r.error?.code).toBe(ErrorCode.OPTION_NEGOTIATION);
    expect(r.data.length).toBe(0);
  });

  it('WRQ: ERROR 2 "writes are not allowed"', async () => {
    const r = await fetchTftp('', { raw: encodeRequest('wrq', 'x.bin', 'octet') });
    expect(r.error).toEqual({ code: ErrorCode.ACCESS_VIOLATION, message: 'writes are not allowed' });
    expect(server.stats.dropped.write_refused).toBeGreaterThanOrEqual(1);
  });
});

describe('timeouts and limits', () => {
  /** Sends `request` and collects what comes back for `ms`, never answering. */
  async function silent(port: number, request: Buffer, ms: number, address = '127.0.0.1', times = 1) {
    const sock = await bound(address);
    const got: Buffer[] = [];
    sock.on('message', (m) => got.push(m));
    for (let i = 0; i < times; i++) sock.send(request, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, ms));
    sock.close();
    return got;
  }
  const waitIdle = async (s: TftpServer) => {
    for (let i = 0; i < 100 && s.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 50));
  };

  it('a client that never ACKs: block 1 (or the OACK) sent 1 + retries times, then dropped', async () => {
    const done: TftpTransfer[] = [];
    const s = await startTftpServer({
      root,
      address: '127.0.0.1',
      port: 0,
      log,
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
    const s = await startTftpServer({ root, address: '127.0.0.1', port: 0, log, retries: 0, timeoutMs: 300 });
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
    const s = await startTftpServer({
      root,
      address: '0.0.0.0',
      port: 0,
      log,
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
    await expect(
      startTftpServer({ root, address: '127.0.0.1', port: server.port, log }),
    ).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    await expect(
      startTftpServer({ root: `${root}/small.bin`, address: '127.0.0.1', port: 0, log }),
    ).rejects.toThrow(/not a directory/);
  });

  it('transfers run on threads of their own (one per core, at most 4), or on the server thread with threads: 0', async () => {
    expect(server.threads).toBe(Math.min(4, availableParallelism()));
    const one = await startTftpServer({ root, address: '127.0.0.1', port: 0, log, threads: 0 });
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

  it('stop() ends active transfers and reports them', async () => {
    const done: TftpTransfer[] = [];
    const s = await startTftpServer({
      root,
      address: '127.0.0.1',
      port: 0,
      log,
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

describe('afterwards', () => {
  it('nothing from outside the root was ever received; the counters add up', () => {
    for (const b of received) expect(b.includes(MARKER)).toBe(false);
    expect(received.length).toBeGreaterThan(30);
    expect(server.stats.active).toBe(0);
    // Every client, ours and the real ones, ACKed its last block: no transfer was left to time out.
    expect(transfers.filter((t) => !t.ok && t.bytes > 0)).toEqual([]);
    expect(server.stats.dropped.timeout ?? 0).toBe(0);
    expect(server.stats.served).toBe(transfers.filter((t) => t.ok).length);
    expect(server.stats.served + server.stats.failed).toBeGreaterThanOrEqual(transfers.length);
  });
});
