/**
 * `npm run bench -- tftp [--clients N] [--rounds R] [--threads T]`
 *
 * MB/s (10^6 bytes) of our TFTP server next to Debian's tftpd-hpa in the same run, both on 127.0.0.1 and
 * a temporary root holding iPXE's undionly.kpxe and a 16 MiB "kernel": N machines (default 50) boot at
 * once, each one curl fetching undionly.kpxe and then the kernel, blksize 1468 and tsize on both sides
 * (no windowsize: tftpd-hpa has none). Output goes to /dev/null; before timing, each server's copy of
 * both files is fetched once and compared. Rounds alternate (ours, hpa, hpa, ours, ...) and the best of
 * each side is reported. Apart from the ratio: the same boot with our own client at windowsize 16, which
 * tftpd-hpa cannot do (two client processes of 25 machines each).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { ensureDebianPrograms } from '../infra/packages.js';
import { encodeAck, encodeRequest, parsePacket } from '../services/provisioner/tftp/packet.js';
import { startTftpServer } from '../services/provisioner/tftp/server.js';
import { createLogger } from '../shared/log.js';

const say = (l: string) => process.stdout.write(`${l}\n`);
const run = promisify(execFile);
const undionly = '/usr/lib/ipxe/undionly.kpxe';
const inTftpd = '/usr/sbin/in.tftpd';
const KERNEL = 16 * 1024 * 1024;
const BLKSIZE = 1468;

// ---- client mode: `tftp.ts --window-client <port> <machines> <windowsize>`, our own RFC 7440 client ----

/** Fetches `file`, counting bytes; ACKs every `windowsize` blocks and the last good one after a gap. */
function fetchCounting(port: number, file: string, windowsize: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    let tid = 0;
    let good = 0;
    let inWindow = 0;
    let bytes = 0;
    let lastAck = encodeAck(0);
    let heard = Date.now();
    const idle = setInterval(() => {
      if (Date.now() - heard > 30_000) done(new Error(`${file}: no data for 30 s`));
      else if (Date.now() - heard > 200 && tid) sock.send(lastAck, tid);
    }, 100);
    const done = (err?: Error) => {
      clearInterval(idle);
      sock.close();
      if (err) reject(err);
      else resolve(bytes);
    };
    /** `then` runs once the datagram is out (closing the socket before that would lose it). */
    const ack = (block: number, then?: () => void) => {
      lastAck = encodeAck(block);
      sock.send(lastAck, tid, '127.0.0.1', then);
    };
    sock.on('message', (m, rinfo) => {
      if (tid === 0) tid = rinfo.port;
      if (rinfo.port !== tid) return;
      heard = Date.now();
      const p = parsePacket(m);
      if (p.op === 'oack') ack(0);
      else if (p.op === 'error') done(new Error(`${file}: ERROR ${p.code} ${p.message}`));
      else if (p.op === 'data') {
        if (p.block !== ((good + 1) & 0xffff)) {
          if (inWindow !== -1) ack(good);
          inWindow = -1;
          return;
        }
        good++;
        bytes += p.data.length;
        inWindow = inWindow === -1 ? 1 : inWindow + 1;
        if (p.data.length < BLKSIZE) ack(good, () => done());
        else if (inWindow >= windowsize) {
          ack(good);
          inWindow = 0;
        }
      }
    });
    sock.bind(0, '127.0.0.1', () => {
      const options: [string, number][] = [
        ['blksize', BLKSIZE],
        ['tsize', 0],
        ['windowsize', windowsize],
      ];
      sock.send(encodeRequest('rrq', file, 'octet', options), port, '127.0.0.1');
    });
  });
}

async function windowClient(port: number, machines: number, windowsize: number): Promise<void> {
  const boot = async () =>
    (await fetchCounting(port, 'undionly.kpxe', windowsize)) +
    (await fetchCounting(port, 'kernel', windowsize));
  const bytes = await Promise.all(Array.from({ length: machines }, boot));
  process.stdout.write(`${JSON.stringify(bytes)}\n`);
}

// ---- the benchmark ----

const { values: opts } = parseArgs({
  options: {
    clients: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    /** Our server's transfer threads (default: the server's own default). */
    threads: { type: 'string' },
    'window-client': { type: 'string', multiple: true },
  },
  allowPositionals: true,
});

async function main(): Promise<void> {
  const CLIENTS = Math.min(200, Math.max(1, Number(opts.clients) || 50));
  const ROUNDS = Math.min(5, Math.max(1, Number(opts.rounds) || 2));
  const hadTftpd = existsSync(inTftpd);
  ensureDebianPrograms(
    [
      { candidates: [inTftpd], pkg: 'tftpd-hpa' },
      { candidates: [undionly], pkg: 'ipxe' },
      { candidates: ['/usr/bin/curl'], pkg: 'curl' },
    ],
    'tftpd-hpa, iPXE and curl for npm run bench -- tftp',
    say,
  );
  if (!hadTftpd) stopPackagedTftpd();

  const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-tftp-`);
  let hpa: ChildProcess | null = null;
  const killHpa = () => {
    if (hpa && hpa.exitCode === null) hpa.kill('SIGTERM');
  };
  process.on('exit', killHpa);
  const stops: (() => Promise<void>)[] = [];
  const log = createLogger('bench-tftp', { level: process.env.LOG_LEVEL ?? 'warn' });
  try {
    // tftpd-hpa drops to `nobody` in a chroot: the root and its files must be world-readable.
    const root = `${dir}/root`;
    mkdirSync(root, { mode: 0o755 });
    chmodSync(dir, 0o755);
    copyFileSync(undionly, `${root}/undionly.kpxe`);
    const kernel = Buffer.alloc(KERNEL);
    for (let i = 0; i < KERNEL; i += 4) kernel.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(`${root}/kernel`, kernel);
    for (const f of ['undionly.kpxe', 'kernel']) chmodSync(`${root}/${f}`, 0o644);
    const server = await startTftpServer({
      root,
      address: '127.0.0.1',
      port: 0,
      log,
      maxTransfers: 512,
      maxPerClient: 512,
      ...(opts.threads === undefined
        ? {}
        : { threads: Math.max(0, Math.min(64, Number(opts.threads) || 0)) }),
    });
    say(`ours: ${server.threads} transfer threads`);
    stops.push(() => server.stop());
    const hpaPort = await freeUdpPort();
    hpa = spawn(inTftpd, ['-L', '-u', 'nobody', '-s', root, '-a', `127.0.0.1:${hpaPort}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let hpaErr = '';
    hpa.stderr?.on('data', (d) => {
      hpaErr += String(d);
    });
    await waitAnswering(hpaPort, () => `in.tftpd did not answer: ${hpaErr.trim() || 'no output'}`);

    const bootBytes = KERNEL + readFileSync(`${root}/undionly.kpxe`).length;
    const total = CLIENTS * bootBytes;
    say(
      `${CLIENTS} machines at once, each: undionly.kpxe (${bootBytes - KERNEL} B) then a 16 MiB kernel; ` +
        `curl --tftp-blksize ${BLKSIZE}, tsize on; ${(total / 1e6).toFixed(0)} MB per run`,
    );

    // ---- same bytes? ----
    const want = (f: string) => sha(readFileSync(`${root}/${f}`));
    for (const [side, port] of [
      ['ours', server.port],
      ['hpa', hpaPort],
    ] as const) {
      for (const f of ['undionly.kpxe', 'kernel']) {
        const out = `${dir}/check-${side}-${f}`;
        await run('curl', ['-sS', '--tftp-blksize', String(BLKSIZE), '-o', out, url(port, f)], {
          timeout: 60_000,
        });
        if (sha(readFileSync(out)) !== want(f)) throw new Error(`${side} served a different ${f}`);
        rmSync(out);
      }
    }
    say('both servers served byte-identical copies of both files');

    // ---- timed, interleaved ----
    const results = { ours: [] as number[], hpa: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('ours' | 'hpa')[] = r % 2 === 0 ? ['ours', 'hpa'] : ['hpa', 'ours'];
      for (const side of order) {
        const port = side === 'ours' ? server.port : hpaPort;
        const t0 = performance.now();
        const sizes = await Promise.all(Array.from({ length: CLIENTS }, () => bootWithCurl(port)));
        const s = (performance.now() - t0) / 1000;
        const bad = sizes.filter((n) => n !== bootBytes).length;
        if (bad > 0) throw new Error(`${side}: ${bad} of ${CLIENTS} machines got the wrong number of bytes`);
        const mbs = total / 1e6 / s;
        results[side].push(mbs);
        say(`round ${r + 1} ${side.padEnd(4)}: ${mbs.toFixed(1)} MB/s (${s.toFixed(2)} s)`);
      }
    }

    // ---- ours at windowsize 16, our own client, apart ----
    const self = fileURLToPath(import.meta.url);
    const t0 = performance.now();
    const halves = await Promise.all(
      [Math.ceil(CLIENTS / 2), Math.floor(CLIENTS / 2)]
        .filter((n) => n > 0)
        .map((n) =>
          run(
            process.execPath,
            [
              '--import',
              'tsx',
              self,
              '--window-client',
              String(server.port),
              '--window-client',
              String(n),
              '--window-client',
              '16',
            ],
            { timeout: 180_000, encoding: 'utf8' },
          ),
        ),
    );
    const ws = (performance.now() - t0) / 1000;
    const got = halves.flatMap((h) => JSON.parse(h.stdout.trim().split('\n').at(-1)!) as number[]);
    if (got.some((n) => n !== bootBytes)) throw new Error('windowsize client got the wrong number of bytes');
    const window16 = total / 1e6 / ws;
    say(
      `ours at windowsize 16 (our own client, 2 processes): ${window16.toFixed(1)} MB/s (${ws.toFixed(2)} s)`,
    );
    say(`ours: ${JSON.stringify(server.stats)}`);

    const best = (l: number[]) => Math.max(...l);
    const o = best(results.ours);
    const b = best(results.hpa);
    say(
      JSON.stringify({
        bench: 'tftp',
        ours: Math.round(o * 10) / 10,
        baseline: Math.round(b * 10) / 10,
        ratio: Math.round((o / b) * 1000) / 1000,
        windowsize16: Math.round(window16 * 10) / 10,
      }),
    );
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    killHpa();
    rmSync(dir, { recursive: true, force: true });
  }
}

const url = (port: number, f: string) => `tftp://127.0.0.1:${port}/${f}`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One machine: both files in one curl process, to /dev/null; the byte count curl saw. */
async function bootWithCurl(port: number): Promise<number> {
  const { stdout } = await run(
    'curl',
    [
      '-sS',
      '--tftp-blksize',
      String(BLKSIZE),
      '-w',
      '%{size_download}\n',
      '-o',
      '/dev/null',
      url(port, 'undionly.kpxe'),
      '-o',
      '/dev/null',
      url(port, 'kernel'),
    ],
    { timeout: 180_000, encoding: 'utf8' },
  );
  return stdout
    .trim()
    .split('\n')
    .reduce((s, n) => s + Number(n), 0);
}

function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  return new Promise((resolve) =>
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    }),
  );
}

/** Until a request for a missing file gets its ERROR. */
async function waitAnswering(port: number, why: () => string): Promise<void> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  try {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const answered = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 200);
        s.once('message', () => {
          clearTimeout(t);
          resolve(true);
        });
      });
      s.send(encodeRequest('rrq', 'no-such-file', 'octet'), port, '127.0.0.1');
      if (await answered) return;
    }
    throw new Error(why());
  } finally {
    s.close();
  }
}

/**
 * Installing tftpd-hpa may start Debian's service on port 69 (where init scripts may run): stop it, and on
 * systemd keep it from starting at boot. Only called when this run installed the package.
 */
function stopPackagedTftpd(): void {
  const quiet = { stdio: 'ignore' as const, timeout: 30_000 };
  try {
    if (existsSync('/run/systemd/system'))
      execFileSync('systemctl', ['disable', '--now', 'tftpd-hpa'], quiet);
    else execFileSync('service', ['tftpd-hpa', 'stop'], quiet);
  } catch {
    // not running, or no init system to ask
  }
  // What is still there is the package's daemon (ours are started later): end it by its pid.
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      if (cmd[0] === inTftpd || cmd[0] === 'in.tftpd') {
        process.kill(Number(pid), 'SIGTERM');
        say(`stopped the packaged tftpd-hpa (pid ${pid}) the install started`);
      }
    } catch {
      // gone meanwhile
    }
  }
}

if (opts['window-client']) {
  const [port, machines, windowsize] = opts['window-client'].map(Number);
  await windowClient(port!, machines!, windowsize!);
} else {
  await main();
}
