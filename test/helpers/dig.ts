import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDebianPrograms } from '../../infra/packages.js';

/**
 * Test and benchmark support: runs the real `dig` (and finds dnsperf/nsd) instead of a hand-made client,
 * so what we assert is what an operator's tools see.
 */
const run = promisify(execFile);

/** Makes sure a Debian tool is present: installs its package when root, else fails naming the package. */
export function ensureTool(binary: string, pkg: string): void {
  const candidates = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => `${d}/${binary}`);
  ensureDebianPrograms([{ candidates, pkg }], `${binary} is needed here`, () => undefined);
}

export const toolPath = () => `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}`;

export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigResult {
  /** NOERROR, NXDOMAIN, REFUSED, ...; null when no answer came back. */
  status: string | null;
  flags: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** The EDNS UDP size the server advertised, when it sent an OPT. */
  udpSize: number | null;
  raw: string;
}

/** `dig @server -p port <args>` without recursion, one try; parsed. */
export async function dig(server: string, port: number, args: string[]): Promise<DigResult> {
  const { stdout } = await run(
    'dig',
    [`@${server}`, '-p', String(port), '+norec', '+time=2', '+tries=1', '+nocookie', ...args],
    { env: { PATH: toolPath() }, timeout: 15_000 },
  ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return parseDig(stdout);
}

export function parseDig(raw: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(raw)?.[1] ?? null;
  const flags = /;; flags: ([a-z ]*);/.exec(raw)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
  const udp = /; EDNS: version: \d+, flags:[^;]*; udp: (\d+)/.exec(raw)?.[1];
  const section = (title: string): DigRecord[] => {
    const start = raw.indexOf(`;; ${title} SECTION:`);
    if (start < 0) return [];
    const lines = raw.slice(start).split('\n').slice(1);
    const out: DigRecord[] = [];
    for (const line of lines) {
      if (line.trim() === '' || line.startsWith(';;')) break;
      const [name = '', ttl = '0', , type = '', ...data] = line.split(/\s+/);
      out.push({ name, ttl: Number(ttl), type, data: data.join(' ') });
    }
    return out;
  };
  return {
    status,
    flags,
    answer: section('ANSWER'),
    authority: section('AUTHORITY'),
    additional: section('ADDITIONAL'),
    udpSize: udp ? Number(udp) : null,
    raw,
  };
}

/**
 * One UDP question from this process (no process spawn), for timing how soon a name resolves; dig then
 * confirms what it sees. Resolves to the answers' data, or null on timeout.
 */
export async function quickLookup(port: number, name: string, type: 'A' | 'AAAA' | 'PTR', timeoutMs = 200) {
  const { createSocket } = await import('node:dgram');
  const { encode, decode } = await import('dns-packet');
  const sock = createSocket('udp4');
  try {
    return await new Promise<{ rcode: string; data: string[] } | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      sock.on('message', (m) => {
        clearTimeout(timer);
        const p = decode(m) as ReturnType<typeof decode> & { rcode: string };
        resolve({
          rcode: p.rcode,
          data: (p.answers ?? []).map((a) => String((a as { data: unknown }).data)),
        });
      });
      sock.send(encode({ type: 'query', id: 1, questions: [{ name, type }] }), port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}
