/**
 * `npm run bench -- dns [--names N] [--seconds S] [--rounds R]`
 *
 * Queries/s of our authoritative server next to NSD, in the same run, both serving the same zones:
 * N nodes (default 10,000) with an A, an AAAA and both PTRs, built by dns-db's own filter and snapshot
 * code; NSD loads master files written from that snapshot. Before timing, every distinct query of the
 * mix (A / AAAA / PTR v4 / PTR v6 / NXDOMAIN) goes to both servers and the rcode, AA flag, answers and
 * authority types must match. Then dnsperf runs alternate (ours, NSD, NSD, ours, ...) so background load
 * hits both; the best round of each side is reported. Response rate limiting is off on both sides.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs, promisify } from 'node:util';
import { decode, encode } from 'dns-packet';
import { pickPort } from '../infra/ports.js';
import { compileFilter, type DerivedRecord, recordsFor } from '../services/dns-db/domain/records.js';
import { ResponseRateLimiter } from '../services/dns-db/domain/rrl.js';
import { buildSnapshot, type ZoneSettings } from '../services/dns-db/domain/snapshot.js';
import { toZoneFile } from '../services/dns-db/domain/zonefile.js';
import { DnsEngine } from '../services/dns-db/server/engine.js';
import { listenDns, waitListening } from '../services/dns-db/server/listen.js';
import type { AllocationSummary, NodeSummary } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { ensureTool, toolPath } from '../test/helpers/dig.js';

const { values: opts } = parseArgs({
  options: {
    names: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Math.min(60_000, Math.max(10_000, Number(opts.names)));
const SECONDS = Math.min(30, Math.max(2, Number(opts.seconds)));
const ROUNDS = Math.min(5, Math.max(1, Number(opts.rounds)));
const run = promisify(execFile);
const log = createLogger('bench-dns', { level: 'warn' });
const domain = 'bench.test';

ensureTool('dnsperf', 'dnsperf');
ensureTool('nsd', 'nsd');

// ---- the zones, from dns-db's own code ----
const settings: ZoneSettings = {
  nsName: `ns.${domain}`,
  nsAddresses: { v4: ['127.0.0.1'], v6: [] },
  hostmaster: `hostmaster.${domain}`,
  ttl: 60,
  refresh: 3600,
  retry: 600,
  expire: 604800,
  minimum: 30,
};
const filters = [
  compileFilter({
    id: 1,
    name: 'default',
    priority: 50,
    matcher: 'net.category == "admin"',
    template: '{{node.name}}',
  }),
];
const v4 = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 2}`;
const v6 = (i: number) => `fd00:bec:4::${(i + 1).toString(16)}`;
const hostname = (i: number) => `n${String(i).padStart(5, '0')}.${domain}`;
const records: DerivedRecord[] = [];
for (let i = 0; i < N; i++) {
  const node = {
    id: i + 1,
    name: hostname(i),
    deployment: 'system',
    macs: [],
    roles: [],
  } as unknown as NodeSummary;
  const a = (id: number, address: string): AllocationSummary => ({
    id,
    nodeId: i + 1,
    node: node.name,
    networkId: 1,
    network: 'admin',
    category: 'admin',
    range: 'host',
    address,
    family: address.includes(':') ? 'ipv6' : 'ipv4',
  });
  records.push(...recordsFor(a(2 * i + 1, `${v4(i)}/16`), node, filters, domain));
  records.push(...recordsFor(a(2 * i + 2, `${v6(i)}/64`), node, filters, domain));
}
const zoneNames = [...new Set([domain, ...records.map((r) => r.zone)])];
const snapshot = buildSnapshot(
  1,
  zoneNames.map((name) => ({ name, serial: 2026112501 })),
  records,
  settings,
);
const reverseV4 = (i: number) => `${v4(i).split('.').reverse().join('.')}.in-addr.arpa`;
const reverseV6 = (i: number) =>
  records.find((r) => r.type === 'PTR' && r.data === hostname(i) && r.zone.endsWith('ip6.arpa'))!.name;

// ---- the query mix ----
const queries: [string, string][] = [];
for (let i = 0; i < N; i++) {
  queries.push([hostname(i), 'A']);
  if (i % 2 === 0) queries.push([hostname(i), 'AAAA']);
  if (i % 3 === 0) queries.push([reverseV4(i), 'PTR']);
  if (i % 4 === 0) queries.push([reverseV6(i), 'PTR']);
  if (i % 3 === 1) queries.push([`missing${i}.${domain}`, 'A']);
}
let seed = 7;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
for (let i = queries.length - 1; i > 0; i--) {
  const j = Math.floor(rnd() * (i + 1));
  [queries[i], queries[j]] = [queries[j]!, queries[i]!];
}

const dir = mkdtempSync(`${tmpdir()}/crowbar-bench-dns-`);
let nsd: ChildProcess | null = null;
const killNsd = () => {
  if (nsd && nsd.exitCode === null) nsd.kill('SIGTERM');
};
process.on('exit', killNsd);

async function main() {
  const queryFile = `${dir}/queries.txt`;
  writeFileSync(queryFile, `${queries.map(([n, t]) => `${n} ${t}`).join('\n')}\n`);

  // ---- ours ----
  const engine = new DnsEngine({ maxUdp: 1232, transferAllowed: () => false });
  engine.install(snapshot);
  const ours = listenDns({
    addresses: ['127.0.0.1'],
    port: 0,
    engine,
    rrl: new ResponseRateLimiter({ ratePerSecond: 0, slip: 0, now: Date.now }),
    tcpIdleMs: 10_000,
    maxTcpConnections: 64,
    retryBindMs: 60_000,
    log,
  });
  await waitListening(ours);
  const ourPort = ours.port();
  if (ourPort === null) throw new Error('our server could not bind 127.0.0.1');

  // ---- NSD, same zones, own dirs, loopback high port ----
  const nsdPort = await pickPort(ourPort + 1);
  const zoneConf: string[] = [];
  for (const [name, view] of snapshot.zones) {
    writeFileSync(`${dir}/${name}.zone`, toZoneFile(view, settings));
    zoneConf.push(`zone:\n  name: "${name}"\n  zonefile: "${dir}/${name}.zone"\n`);
  }
  writeFileSync(
    `${dir}/nsd.conf`,
    `server:
  ip-address: 127.0.0.1
  port: ${nsdPort}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  database: ""
  zonelistfile: "${dir}/zone.list"
  xfrdfile: "${dir}/xfrd.state"
  xfrdir: "${dir}"
  logfile: "${dir}/nsd.log"
  verbosity: 1
  hide-version: yes
  minimal-responses: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
${zoneConf.join('')}`,
  );
  nsd = spawn('nsd', ['-d', '-c', `${dir}/nsd.conf`], { stdio: 'ignore', env: { PATH: toolPath() } });
  await waitAnswering(nsdPort);

  console.log(
    `zones: ${snapshot.zones.size} (${records.length} records for ${N} nodes); query mix: ${queries.length} queries`,
  );
  console.log('rate limiting: ours off (CROWBAR_DNS_RRL_RATE=0 equivalent), NSD rrl-ratelimit: 0');

  // ---- same answers? every distinct query to both ----
  let mismatches = 0;
  const shown: string[] = [];
  for (let i = 0; i < queries.length; i += 100) {
    const batch = queries.slice(i, i + 100);
    const [a, b] = await Promise.all([askAll(ourPort, batch), askAll(nsdPort, batch)]);
    for (let k = 0; k < batch.length; k++) {
      // A lost datagram is asked again alone before it counts as a difference.
      if (a[k] === 'no answer') a[k] = (await askAll(ourPort, [batch[k]!]))[0]!;
      if (b[k] === 'no answer') b[k] = (await askAll(nsdPort, [batch[k]!]))[0]!;
      if (a[k] !== b[k]) {
        mismatches++;
        if (shown.length < 5) shown.push(`${batch[k]!.join(' ')}: ours ${a[k]} | nsd ${b[k]}`);
      }
    }
  }
  console.log(`answers compared: ${queries.length}, mismatches: ${mismatches}`);
  for (const s of shown) console.log(`  ${s}`);

  // ---- dnsperf, interleaved ----
  const results = { ours: [] as Perf[], nsd: [] as Perf[] };
  for (let r = 0; r < ROUNDS; r++) {
    const order: ('ours' | 'nsd')[] = r % 2 === 0 ? ['ours', 'nsd'] : ['nsd', 'ours'];
    for (const side of order) {
      const p = await dnsperf(side === 'ours' ? ourPort : nsdPort, queryFile);
      results[side].push(p);
      console.log(
        `round ${r + 1} ${side.padEnd(4)}: ${p.qps.toFixed(0)} q/s, lost ${p.lost}, rcodes ${JSON.stringify(p.rcodes)}`,
      );
    }
  }
  const best = (l: Perf[]) => l.reduce((x, y) => (y.qps > x.qps ? y : x));
  const o = best(results.ours);
  const n = best(results.nsd);
  const share = (p: Perf) => {
    const total = Object.values(p.rcodes).reduce((s, v) => s + v, 0) || 1;
    return Object.fromEntries(
      Object.entries(p.rcodes).map(([k, v]) => [k, Math.round((1000 * v) / total) / 10]),
    );
  };
  console.log(`rcode shares (%): ours ${JSON.stringify(share(o))}, nsd ${JSON.stringify(share(n))}`);
  const lost = results.ours.reduce((s, p) => s + p.lost, 0);
  if (mismatches > 0) console.log(`WARNING: ${mismatches} answers differ from NSD's`);
  await ours.stop();
  killNsd();
  const ratio = Math.round((o.qps / n.qps) * 1000) / 1000;
  // Answers that differ from NSD's make the run fail, after the figures are out.
  if (mismatches > 0) process.exitCode = 1;
  console.log(
    JSON.stringify({ bench: 'dns', ours: Math.round(o.qps), baseline: Math.round(n.qps), ratio, lost }),
  );
}

interface Perf {
  qps: number;
  lost: number;
  rcodes: Record<string, number>;
}

async function dnsperf(port: number, file: string): Promise<Perf> {
  const { stdout } = await run(
    'dnsperf',
    [
      '-s',
      '127.0.0.1',
      '-p',
      String(port),
      '-d',
      file,
      '-l',
      String(SECONDS),
      '-c',
      '2',
      '-q',
      '200',
      '-t',
      '3',
    ],
    { env: { PATH: toolPath() }, timeout: (SECONDS + 20) * 1000 },
  );
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? -1);
  const rcodes: Record<string, number> = {};
  const line = /Response codes:\s+(.*)/.exec(stdout)?.[1] ?? '';
  for (const m of line.matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]!] = Number(m[2]);
  return { qps, lost, rcodes };
}

/** rcode, AA, answers and authority types of each query, as one comparable string. */
async function askAll(port: number, batch: [string, string][]): Promise<string[]> {
  const sock = createSocket('udp4');
  const out: string[] = batch.map(() => 'no answer');
  let pending = batch.length;
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    sock.on('message', (m) => {
      const p = decode(m);
      const i = p.id ?? -1;
      if (i < 0 || i >= batch.length || out[i] !== 'no answer') return;
      const ans = (p.answers ?? [])
        .map((a: any) => `${a.name.toLowerCase()} ${a.type} ${a.ttl} ${JSON.stringify(a.data)}`)
        .sort();
      out[i] =
        `${(p as any).rcode} aa=${p.flag_aa} [${ans.join('; ')}] auth=${(p.authorities ?? []).map((a) => a.type).join(',')}`;
      if (--pending === 0) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  for (const [i, [name, type]] of batch.entries())
    sock.send(encode({ type: 'query', id: i, questions: [{ name, type: type as 'A' }] }), port, '127.0.0.1');
  await done;
  sock.close();
  return out;
}

async function waitAnswering(port: number) {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const [r] = await askAll(port, [[domain, 'SOA']]);
    if (r?.startsWith('NOERROR')) return;
    if (nsd?.exitCode !== null)
      throw new Error(`nsd exited (code ${nsd?.exitCode}); see its log in ${dir}/nsd.log`);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nsd did not answer on 127.0.0.1:${port} within 15 s`);
}

try {
  await main();
} finally {
  killNsd();
  rmSync(dir, { recursive: true, force: true });
}
