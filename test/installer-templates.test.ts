import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  type Bootenv,
  ipxeScript,
  loadBootenvs,
  type RenderContext,
  RenderError,
  renderChecked,
  renderTemplate,
} from '../services/provisioner/domain/bootenv.js';
import { startHttp } from '../services/provisioner/http.js';
import type { NodeSummary } from '../shared/catalogue/index.js';
import { checkDiscoveryToken, mintDiscoveryToken } from '../shared/discovery-token.js';
import { createLogger } from '../shared/log.js';
import { ensureTool } from './helpers/dig.js';
import { fixedRegistry, nodeSummary } from './helpers/fixtures.js';
import {
  autoinstallSchema,
  cloudInitSchemaError,
  KickstartError,
  metaDataSchema,
  parseKickstart,
  shellSyntaxError,
} from './helpers/installer-checks.js';

/**
 * The OS installers whose network installs cannot run here (Ubuntu autoinstall, Rocky kickstart, and
 * the Debian preseed's refusals): rendered per node by the provisioner's HTTP server and validated —
 * cloud-config by cloud-init's own schema check, the autoinstall section by a zod schema of its v1
 * keys, kickstart by a strict parser (Debian has no pykickstart), shell by `sh -n` — and node data that
 * would break out of its place in a file is refused, not rendered.
 */
const secret = 'installer-templates-secret-0123456789';
const bootenvDir = fileURLToPath(new URL('../services/provisioner/bootenvs/', import.meta.url));
let dir: string;
let base: string;
let clusterKey: string;
let bootenvs: Map<string, Bootenv>;
let http: Awaited<ReturnType<typeof startHttp>>;

/** The nodes the server knows, with the disk each one's install chose (as provisioner-os-install records it). */
const nodes: { summary: NodeSummary; disk: string }[] = [];
const node = (id: number, name: string, bootenv: string, disk: string, mac: string) => {
  const summary = nodeSummary(id, name, { bootenv, macs: [mac] });
  nodes.push({ summary, disk });
  return summary;
};
const ubuntu = node(11, 'u1.lab.test', 'ubuntu-24.04-install', 'nvme0n1', '52:54:00:00:11:01');
const rocky = node(12, 'r1.lab.test', 'rocky-9-install', 'sdb', '52:54:00:00:12:01');
const semicolonDisk = node(13, 'u2.lab.test', 'ubuntu-24.04-install', 'sda;reboot', '52:54:00:00:13:01');
const yamlDisk = node(14, 'u3.lab.test', 'ubuntu-24.04-install', 'vda"\n  evil: 1', '52:54:00:00:14:01');
// Inventory's names allow `_`, which is no host name label.
const underscore = node(15, 'bad_host.lab.test', 'ubuntu-24.04-install', 'vda', '52:54:00:00:15:01');
const rockyBadDisk = node(16, 'r2.lab.test', 'rocky-9-install', 'vda$(reboot)', '52:54:00:00:16:01');
const preseedBadDisk = node(17, 'p1.lab.test', 'debian-12-preseed-install', 'sda`id`', '52:54:00:00:17:01');
const preseedUnderscore = node(18, 'p_2.lab.test', 'debian-12-preseed-install', 'vda', '52:54:00:00:18:01');

const registry = fixedRegistry(() => nodes.map((n) => n.summary));

/** The context the provisioner gives templates (its service's renderContext, with a fixed clock). */
function context(
  port: number,
  server: string,
  mac: string,
  n: { id: number; name: string } | null,
  b: string,
) {
  const disk = n ? (nodes.find((x) => x.summary.id === n.id)?.disk ?? '') : '';
  return {
    api: `http://${server}:3000`,
    provisioner: `http://${server}:${port}`,
    server,
    token: mintDiscoveryToken(secret, {
      expires: Math.floor(Date.now() / 1000) + 3600,
      nodeId: n?.id ?? null,
    }),
    mac,
    bootenv: b,
    'node.name': n?.name ?? '',
    'node.hostname': n?.name.split('.')[0] ?? '',
    'node.domain': n?.name.split('.').slice(1).join('.') ?? '',
    'node.id': n ? String(n.id) : '',
    node_arg: n ? ` crowbar.node=${n.name}` : '',
    image: '',
    disk,
  } satisfies RenderContext;
}

async function get(path: string) {
  const r = await fetch(`${base}${path}`);
  return { status: r.status, body: await r.text() };
}
const scriptOf = (n: NodeSummary) => get(`/boot/${n.macs[0]!.replaceAll(':', '-')}.ipxe`);
const kernelLine = (script: string) => script.split('\n').find((l) => l.startsWith('kernel '))!;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-installers-'));
  const root = join(dir, 'boot');
  mkdirSync(root);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'crowbar@cluster',
    '-f',
    join(dir, 'cluster'),
  ]);
  clusterKey = readFileSync(join(dir, 'cluster.pub'), 'utf8').trim();
  bootenvs = loadBootenvs([bootenvDir]);
  // cloud-init's own schema check (Debian's package; a fresh machine installs it here, not mid-test).
  ensureTool('cloud-init', 'cloud-init');
  let port = 0;
  http = await startHttp({
    rootReal: realpathSync(root),
    address: '127.0.0.1',
    port: 0,
    log: createLogger('installer-templates', { level: process.env.TEST_LOG ?? 'silent' }),
    registry,
    bootenvs: () => bootenvs,
    joinFiles: { 'join.sh': '#!/bin/sh\n', 'crowbar-join': '', 'crowbar-join.service': '' },
    discoveryBootenv: 'sledgehammer',
    context: (server, mac, n, b) => context(port, server, mac, n, b),
    authorizedKeys: () => `${clusterKey}\n`,
    recorded: () => undefined,
  });
  port = http.port;
  base = `http://127.0.0.1:${port}`;
}, 600_000);
afterAll(async () => {
  await http?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the installer bootenvs', () => {
  it('load with the shipped ones, each install followed by local', () => {
    expect([...bootenvs.keys()].sort()).toEqual([
      'debian-12-install',
      'debian-12-preseed-install',
      'local',
      'rocky-9-install',
      'sledgehammer',
      'ubuntu-24.04-install',
    ]);
    for (const name of ['ubuntu-24.04-install', 'rocky-9-install'])
      expect(bootenvs.get(name)?.next).toBe('local');
    expect(Object.keys(bootenvs.get('ubuntu-24.04-install')!.templates).sort()).toEqual([
      'meta-data',
      'user-data',
    ]);
    expect(Object.keys(bootenvs.get('rocky-9-install')!.templates)).toEqual(['ks.cfg']);
  });
});

describe('Ubuntu 24.04 autoinstall', () => {
  it('boots the netboot kernel with the ISO and a NoCloud source that serves the node’s user-data and meta-data', async () => {
    const s = await scriptOf(ubuntu);
    expect(s.status).toBe(200);
    expect(s.body).toContain(`initrd --name initrd ${base}/ubuntu-24.04/amd64/initrd\n`);
    const kernel = kernelLine(s.body);
    expect(kernel.startsWith(`kernel ${base}/ubuntu-24.04/amd64/linux initrd=initrd `)).toBe(true);
    const args = kernel.split(' ');
    expect(args).toEqual(
      expect.arrayContaining([
        'ip=dhcp',
        `url=${base}/ubuntu-24.04/ubuntu-24.04-live-server-amd64.iso`,
        'cloud-config-url=/dev/null',
        'autoinstall',
      ]),
    );
    // cloud-init's NoCloud: `s=` is a prefix to which it appends user-data and meta-data.
    const seed = /^ds=nocloud-net;s=(\S+\/)$/.exec(args.find((a) => a.startsWith('ds=')) ?? '')?.[1];
    expect(seed).toBe(`${base}/nodes/${ubuntu.name}/`);
    const userData = await fetch(`${seed}user-data`);
    const metaData = await fetch(`${seed}meta-data`);
    expect([userData.status, metaData.status]).toEqual([200, 200]);
    const meta = metaDataSchema.parse(parse(await metaData.text()));
    expect(meta).toEqual({ 'instance-id': ubuntu.name, 'local-hostname': 'u1' });
  });

  it('renders user-data that cloud-init’s schema accepts, with an autoinstall for the chosen disk, the cluster key and join.sh', async () => {
    const { status, body } = await get(`/nodes/${ubuntu.name}/user-data`);
    expect(status).toBe(200);
    expect(body.split('\n')[0]).toBe('#cloud-config');
    expect(body).not.toMatch(/\{\{/);
    expect(cloudInitSchemaError(dir, 'user-data', body)).toBeNull();

    const doc = parse(body) as { autoinstall?: unknown };
    expect(Object.keys(doc)).toEqual(['autoinstall']);
    const auto = autoinstallSchema.parse(doc.autoinstall);
    expect(auto.version).toBe(1);
    expect(auto.storage?.layout).toEqual({ name: 'direct', match: { path: '/dev/nvme0n1' } });
    expect(auto.ssh).toEqual({ 'install-server': true, 'allow-pw': false });
    // The installed system's own cloud-config: root only, its key the cluster's, the node's names.
    const target = auto['user-data']!;
    expect(target).toMatchObject({
      hostname: 'u1',
      fqdn: 'u1.lab.test',
      users: [{ name: 'root', lock_passwd: true, ssh_authorized_keys: [clusterKey] }],
      disable_root: false,
      ssh_deletekeys: false,
    });
    const targetText = `#cloud-config\n${JSON.stringify(target)}\n`;
    expect(cloudInitSchemaError(dir, 'target-user-data', targetText)).toBeNull();

    const late = auto['late-commands']!.map((c) => (Array.isArray(c) ? c.join(' ') : c));
    for (const c of late) expect(shellSyntaxError(c)).toBeNull();
    expect(late[0]).toContain(`echo "${clusterKey}" > /root/.ssh/authorized_keys`);
    const join = /curl -fsS "(\S+)" \| sh -s -- "(\S+)" --installed/.exec(late.at(-1)!);
    expect(join?.[1]).toBe(`${base}/join.sh`);
    const claims = checkDiscoveryToken(secret, join?.[2] ?? '', Math.floor(Date.now() / 1000));
    expect(claims.ok && claims.claims.nodeId).toBe(ubuntu.id);
  });

  it('has validators that refuse what the installer would refuse', () => {
    expect(cloudInitSchemaError(dir, 'no-header', 'autoinstall: {version: 1}\n')).toMatch(/#cloud-config/);
    expect(cloudInitSchemaError(dir, 'bad-type', '#cloud-config\nusers: 5\nssh_pwauth: maybe\n')).toMatch(
      /users: 5 is not of type/,
    );
    const good = { version: 1, 'user-data': {}, storage: { layout: { name: 'direct' } } };
    expect(autoinstallSchema.safeParse(good).success).toBe(true);
    const bad = (a: object) => autoinstallSchema.safeParse(a).error?.issues[0];
    expect(bad({ ...good, version: 2 })?.path).toEqual(['version']);
    expect(bad({ version: 1, storage: { layout: { name: 'lvm' } } })?.message).toMatch(
      /identity or user-data/,
    );
    expect(bad({ ...good, storage: { layout: { name: 'direct', match: { path: 'sda' } } } })?.path).toEqual([
      'storage',
      'layout',
      'match',
      'path',
    ]);
    expect(bad({ ...good, 'late-command': [] })?.code).toBe('unrecognized_keys');
    expect(bad({ ...good, identity: { hostname: 'a_b', username: 'u', password: 'x' } })?.path).toEqual([
      'identity',
      'hostname',
    ]);
  });
});

describe('Rocky Linux 9 kickstart', () => {
  it('boots Anaconda from images/pxeboot with inst.ks naming the node’s ks.cfg', async () => {
    const s = await scriptOf(rocky);
    expect(s.status).toBe(200);
    expect(s.body).toContain(`initrd --name initrd.img ${base}/rocky-9/images/pxeboot/initrd.img\n`);
    const args = kernelLine(s.body).split(' ');
    expect(args.slice(0, 3)).toEqual([
      'kernel',
      `${base}/rocky-9/images/pxeboot/vmlinuz`,
      'initrd=initrd.img',
    ]);
    expect(args).toContain(`inst.ks=${base}/nodes/${rocky.name}/ks.cfg`);
    expect(args.find((a) => a.startsWith('inst.repo='))).toMatch(
      /^inst\.repo=https:\/\/\S+\/BaseOS\/x86_64\/os\/$/,
    );
    const ks = args.find((a) => a.startsWith('inst.ks='))!.slice('inst.ks='.length);
    expect((await fetch(ks)).status).toBe(200);
  });

  it('renders a kickstart every line of which the strict parser accepts, for the chosen disk only', async () => {
    const { status, body } = await get(`/nodes/${rocky.name}/ks.cfg`);
    expect(status).toBe(200);
    expect(body).not.toMatch(/\{\{/);
    const ks = parseKickstart(body);
    const cmd = (n: string) => ks.commands.get(n);
    expect(cmd('network')?.options).toEqual({
      '--bootproto': 'dhcp',
      '--device': 'link',
      '--activate': true,
      '--onboot': 'yes',
      '--hostname': 'r1.lab.test',
    });
    expect(cmd('rootpw')?.options).toEqual({ '--lock': true });
    expect(cmd('sshkey')).toMatchObject({ options: { '--username': 'root' }, args: [clusterKey] });
    expect(cmd('ignoredisk')?.options).toEqual({ '--only-use': 'sdb' });
    expect(cmd('clearpart')?.options['--drives']).toBe('sdb');
    expect(cmd('autopart')).toBeDefined();
    expect(cmd('reboot')).toBeDefined();
    expect(ks.packages).toEqual(expect.arrayContaining(['@^minimal-environment', 'openssh-server', 'curl']));
    expect(ks.post).toHaveLength(1);
    const post = ks.post[0]!;
    expect(post.options['--erroronfail']).toBe(true);
    expect(shellSyntaxError(post.body)).toBeNull();
    const token = /curl -fsS "\S+\/join\.sh" \| sh -s -- "(\S+)" --installed/.exec(post.body)?.[1];
    const claims = checkDiscoveryToken(secret, token ?? '', Math.floor(Date.now() / 1000));
    expect(claims.ok && claims.claims.nodeId).toBe(rocky.id);
  });

  it('has a parser that refuses what it does not know', async () => {
    const good = (await get(`/nodes/${rocky.name}/ks.cfg`)).body;
    const refuse = (text: string) => {
      try {
        parseKickstart(text);
        return null;
      } catch (err) {
        if (err instanceof KickstartError) return err.message;
        throw err;
      }
    };
    expect(refuse(good)).toBeNull();
    expect(refuse(good.replace('text\n', 'txet\n'))).toMatch(/unknown command txet/);
    expect(refuse(good.replace('--bootproto=dhcp', '--bootproto=magic'))).toMatch(
      /--bootproto="magic" is not a valid/,
    );
    expect(refuse(good.replace('rootpw --lock', 'rootpw --lock --plaintext'))).toMatch(
      /rootpw has no option --plaintext/,
    );
    expect(refuse(good.replace('--drives=sdb', '--drives=sda'))).toMatch(
      /clearpart --drives=sda is not ignoredisk's sdb/,
    );
    expect(refuse(good.replace(/%end\n$/, ''))).toMatch(/has no %end/);
    expect(refuse(good.replace('--hostname=r1.lab.test', '--hostname=r_1.lab.test'))).toMatch(/--hostname/);
    expect(refuse(`${good}reboot\n`)).toMatch(/reboot given twice/);
    expect(refuse(good.replace('sshkey --username=root "', 'sshkey --username=root "x'))).toMatch(
      /sshkey argument/,
    );
  });
});

describe('node data that would not stay data', () => {
  it('refuses to render a disk with shell or YAML metacharacters, in every installer, naming the value', async () => {
    for (const [n, file] of [
      [semicolonDisk, 'user-data'],
      [yamlDisk, 'user-data'],
      [rockyBadDisk, 'ks.cfg'],
      [preseedBadDisk, 'preseed.cfg'],
    ] as const) {
      const r = await get(`/nodes/${n.name}/${file}`);
      const disk = nodes.find((x) => x.summary.id === n.id)!.disk;
      expect(r.status, `${n.name} ${file}`).toBe(500);
      expect(r.body).toContain(
        `template ${file}: {{disk}} ${JSON.stringify(disk)} is not a disk name like vda`,
      );
      expect(r.body).not.toContain('#cloud-config');
    }
    // The meta-data of the same node uses no disk: it still renders.
    expect((await get(`/nodes/${semicolonDisk.name}/meta-data`)).status).toBe(200);
    expect(http.stats.refused.render_refused).toBeGreaterThanOrEqual(4);
  });

  it('refuses a host name that is not a label, in the templates and on the installer’s kernel line', async () => {
    const ud = await get(`/nodes/${underscore.name}/user-data`);
    expect(ud.status).toBe(500);
    expect(ud.body).toMatch(/\{\{node\.hostname\}\} "bad_host" is not a host name label \(RFC 1123/);
    expect((await get(`/nodes/${underscore.name}/meta-data`)).status).toBe(500);
    // The preseed bootenv puts the host name on the kernel line: the boot script itself is refused.
    const s = await scriptOf(preseedUnderscore);
    expect(s.status).toBe(500);
    expect(s.body).toMatch(/bootenv debian-12-preseed-install args: \{\{node\.hostname\}\} "p_2"/);
    expect((await get(`/nodes/${preseedUnderscore.name}/preseed.cfg`)).status).toBe(500);
  });

  it('checks every value in the renderer itself, and that a YAML template still parses', () => {
    const b = bootenvs.get('ubuntu-24.04-install')!;
    const ctx = context(1, '127.0.0.1', '52:54:00:00:11:01', ubuntu, b.name);
    expect(parse(renderTemplate(b, 'user-data', { ...ctx, ssh_key: clusterKey }))).toHaveProperty(
      'autoinstall',
    );
    const refused = (over: Partial<RenderContext>, file = 'user-data') => {
      try {
        renderTemplate(b, file, { ...ctx, ssh_key: clusterKey, ...over });
        return null;
      } catch (err) {
        if (err instanceof RenderError) return err;
        throw err;
      }
    };
    expect(refused({ ssh_key: `${clusterKey}\nssh-ed25519 AAAA evil` })?.placeholder).toBe('ssh_key');
    expect(refused({ ssh_key: `${clusterKey}" ; reboot #` })?.placeholder).toBe('ssh_key');
    expect(refused({ token: "x' ; reboot ; '" })?.placeholder).toBe('token');
    expect(refused({ provisioner: 'http://h:1/$(reboot)' })?.placeholder).toBe('provisioner');
    expect(refused({ 'node.domain': 'lab.test\nevil: 1' })?.placeholder).toBe('node.domain');
    expect(refused({ 'node.name': 'u1.lab.test"' }, 'meta-data')?.message).toMatch(
      /template meta-data: \{\{node\.name\}\} "u1\.lab\.test\\"" is not a node name/,
    );
    // A value of the right form in a template that is itself broken YAML: refused after rendering.
    const broken = renderBroken(ctx);
    expect(broken).toMatch(/^t user-data: the rendered file is not one YAML document/);
    expect(() =>
      ipxeScript(bootenvs.get('rocky-9-install')!, { ...ctx, 'node.name': 'r1 inst.sshd' }),
    ).toThrow(/\{\{node\.name\}\} "r1 inst\.sshd" is not a node name/);
  });
});

function renderBroken(ctx: RenderContext): string | null {
  try {
    renderChecked('t user-data', 'a: [{{disk}}\n', ctx, 'yaml');
    return null;
  } catch (err) {
    return err instanceof RenderError ? err.message : String(err);
  }
}
