/**
 * The provisioner's TFTP server against real clients (tftp-hpa, curl, busybox) and our own dgram client
 * where none of those can: windowsize, loss, duplicate ACKs, a client that never ACKs, exact error codes.
 * The boot root sits next to an `outside` directory whose file carries a marker that must never arrive.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPrograms } from '../infra/packages.js';
import { ErrorCode, encodeRequest, fromNetascii, toNetascii } from '../services/provisioner/tftp/packet.js';
import { startTftpServer, type TftpServer, type TftpTransfer } from '../services/provisioner/tftp/server.js';
import { createLogger } from '../shared/log.js';
import { type Fetch, type FetchOptions, fetchTftp as tftpFetch } from './helpers/tftp-client.js';

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

/** Our client against the shared server; what it got counts for the last check. */
async function fetchTftp(file: string, o: FetchOptions = {}, port = server.port): Promise<Fetch> {
  const f = await tftpFetch(file, port, o);
  received.push(f.data);
  return f;
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
