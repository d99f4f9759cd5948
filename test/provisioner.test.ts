import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { checkDiscoveryToken, mintDiscoveryToken } from '../shared/discovery-token.js';
import { until } from './helpers/dhcp-clients.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { rawGet } from './helpers/raw-http.js';
import { newKeyPair } from './helpers/sshd.js';
import { type Stack, startStack, testAdminToken } from './helpers/stack.js';

/**
 * The provisioner with its real neighbours (inventory, network-ipam, dhcp-db, gateway): per-node iPXE
 * scripts, boot files with ranges, paths that must never leave the boot root, boot events, the boot
 * map reaching dhcp-db, and registration through the gateway with discovery tokens.
 */
const secret = 'test-discovery-secret-0123456789';
const domain = 'prov.test';
let t: TestEnv;
let stack: Stack;
let dir: string;
let base: string;
let apiPort: number;

const get = (path: string, headers: Record<string, string> = {}) => rawGet(base, path, headers);
const keyPair = () => newKeyPair(dir);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crowbar-prov-'));
  const root = join(dir, 'boot');
  const image = join(dir, 'image');
  mkdirSync(join(root, 'images'), { recursive: true });
  mkdirSync(image);
  writeFileSync(join(image, 'vmlinuz'), 'kernel-bytes');
  writeFileSync(join(image, 'initrd.img'), 'initrd-bytes');
  const big = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 251));
  writeFileSync(join(root, 'images', 'os.img'), big);
  writeFileSync(join(dir, 'secret.txt'), 'OUTSIDE-THE-BOOT-ROOT');
  symlinkSync(join(dir, 'secret.txt'), join(root, 'images', 'escape'));
  symlinkSync(dir, join(root, 'up'));
  newKeyPair(dir, 'cluster');

  apiPort = await pickPort(0);
  const httpPort = await pickPort(0);
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'network-ipam', 'dhcp-db', 'provisioner', 'gateway'], {
    CROWBAR_HTTP_PORT: String(apiPort),
    CROWBAR_PROVISIONER_HTTP_PORT: String(httpPort),
    CROWBAR_PROVISIONER_HTTP_ADDRESS: '127.0.0.1',
    CROWBAR_TFTP_PORT: '0',
    CROWBAR_TFTP_ADDRESS: '127.0.0.1',
    CROWBAR_BOOT_ROOT: root,
    CROWBAR_DISCOVERY_IMAGE: image,
    CROWBAR_DISCOVERY_SECRET: secret,
    CROWBAR_SSH_KEY: join(dir, 'cluster'),
    CROWBAR_DNS_DOMAIN: domain,
    CROWBAR_ADMIN_CIDR: '198.18.116.0/24',
    // No interface carries the admin network here: dhcp-db serves nobody, but takes the boot map.
    CROWBAR_DHCP_INTERFACES: 'lo',
  });
  base = `http://127.0.0.1:${httpPort}`;
});
afterAll(async () => {
  await stack?.stop();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('provisioner HTTP', () => {
  it('sends an unknown MAC the discovery script with a working discovery token', async () => {
    const r = await get('/boot/52-54-00-aa-00-01.ipxe');
    expect(r.status).toBe(200);
    const script = r.body.toString();
    expect(script.startsWith('#!ipxe\n')).toBe(true);
    expect(script).toContain(`initrd --name initrd.img ${base}/discovery/initrd.img`);
    expect(script).toMatch(
      new RegExp(
        `kernel ${base}/discovery/vmlinuz initrd=initrd.img .*crowbar.api=http://127.0.0.1:${apiPort}`,
      ),
    );
    expect(script).not.toContain('crowbar.node=');
    const token = /crowbar\.token=(\S+)/.exec(script)![1]!;
    const check = checkDiscoveryToken(secret, token, Math.floor(Date.now() / 1000));
    expect(check).toMatchObject({ ok: true, claims: { nodeId: null } });
  });

  it('serves boot files with ranges and the cluster key, and nothing outside the boot root', async () => {
    expect((await get('/discovery/vmlinuz')).body.toString()).toBe('kernel-bytes');
    expect((await get('/undionly.kpxe')).body.equals(readFileSync('/usr/lib/ipxe/undionly.kpxe'))).toBe(true);
    const part = await get('/images/os.img', { range: 'bytes=1000-1999' });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 1000-1999/${1 << 20}`);
    expect(part.body.length).toBe(1000);
    expect(part.body[0]).toBe(1000 % 251);
    expect((await get('/images/os.img', { range: 'bytes=-10' })).body.length).toBe(10);
    expect((await get('/images/os.img', { range: `bytes=${1 << 21}-` })).status).toBe(416);
    expect((await get('/keys/authorized_keys')).body.toString()).toBe(
      readFileSync(join(dir, 'cluster.pub'), 'utf8'),
    );
    for (const path of [
      '/../secret.txt',
      '/images/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/images/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/images/escape',
      '/up/secret.txt',
      '/images/os.img%00.txt',
      '/images\\..\\..\\secret.txt',
      '/images',
      '/nope',
    ]) {
      const r = await get(path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.body.toString(), path).not.toContain('OUTSIDE-THE-BOOT-ROOT');
    }
  });

  it('follows a node: its bootenv in the script and in bootstate, and what it fetched in its boot events', async () => {
    const n = await stack.call('POST', '/nodes', { name: `n1.${domain}`, mac: '52:54:00:aa:00:02' });
    expect(n.status).toBe(201);
    await until(
      'the node in the provisioner',
      async () => (await get(`/nodes/n1.${domain}/bootstate`)).status === 200,
    );
    expect((await get(`/nodes/n1.${domain}/bootstate`)).body.toString()).toBe('sledgehammer\n');
    const s = (await get('/boot/52-54-00-aa-00-02.ipxe')).body.toString();
    expect(s).toContain(`crowbar.node=n1.${domain}`);
    const token = /crowbar\.token=(\S+)/.exec(s)![1]!;
    expect(checkDiscoveryToken(secret, token, Math.floor(Date.now() / 1000))).toMatchObject({
      claims: { nodeId: n.body.id },
    });
    await get('/discovery/initrd.img');

    expect((await stack.call('PUT', `/nodes/${n.body.id}`, { bootenv: 'local' })).status).toBe(200);
    await until(
      'bootstate local',
      async () => (await get(`/nodes/n1.${domain}/bootstate`)).body.toString() === 'local\n',
    );
    expect((await get('/boot/52-54-00-aa-00-02.ipxe')).body.toString()).toContain('exit');

    const ev = await until('boot events', async () => {
      const r = await stack.call('GET', `/nodes/${n.body.id}/boot_events`);
      return r.body.length >= 3 ? r.body : null;
    });
    expect(ev.map((e: { file: string }) => e.file)).toEqual([
      '/boot/52-54-00-aa-00-02.ipxe',
      '/discovery/initrd.img',
      '/boot/52-54-00-aa-00-02.ipxe',
    ]);
    expect(ev[0]).toMatchObject({ bootenv: 'local', mac: '52:54:00:aa:00:02', transport: 'http', ok: true });
    expect(ev[2]).toMatchObject({ bootenv: 'sledgehammer' });
  });

  it('publishes its boot map to dhcp-db and lists bootenvs', async () => {
    await until('dhcp-db on the provisioner boot map', async () => {
      const s = await stack.call('GET', '/dhcp/stats');
      return s.body.bootMap?.source === 'provisioner';
    });
    const envs = await stack.call('GET', '/bootenvs');
    expect(envs.body.map((b: { name: string }) => b.name).sort()).toEqual([
      'debian-12-install',
      'debian-12-preseed-install',
      'local',
      'rocky-9-install',
      'sledgehammer',
      'ubuntu-24.04-install',
    ]);
  });
});

describe('registration through the gateway', () => {
  const token = (nodeId: number | null = null, ttl = 600) =>
    mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + ttl, nodeId });
  const register = (body: unknown, bearer: string | null = token()) =>
    fetch(`http://127.0.0.1:${apiPort}/api/v2/node-api/register`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const facts = { cpus: 2, memoryMb: 512, disks: [{ name: 'vda', sizeBytes: 1 << 30 }] };
  let hostKey: string;
  let nodeId: number;
  let credential: string;

  it('creates a quarantined node with its facts, pinned host key and discovery roles', async () => {
    hostKey = keyPair();
    const r = await register({
      macs: ['52:54:00:bb:00:01'],
      bootMac: '52:54:00:bb:00:01',
      hostKey,
      facts,
      address: '198.18.116.30/24',
    });
    expect(r.status).toBe(201);
    expect(r.body.node.name).toBe(`d52-54-00-bb-00-01.${domain}`);
    // network-admin gave it a host address, returned so the agent can move to it at once.
    expect(r.body.addresses.some((a: string) => /^198\.18\.116\.(8[1-9]|9\d|1\d\d|2\d\d)\/24$/.test(a))).toBe(
      true,
    );
    nodeId = r.body.node.id;
    credential = r.body.credential;
    const n = (await stack.call('GET', `/nodes/${nodeId}`)).body;
    expect(n).toMatchObject({ available: false, alive: false, bootenv: 'sledgehammer', sshHostKey: hostKey });
    expect(n.discovery.facts).toEqual(facts);
    const roles = (await stack.call('GET', `/nodes/${nodeId}/node_roles`)).body.noderoles.map(
      (nr: { role: string }) => nr.role,
    );
    expect(roles).toContain('crowbar-managed-node');
    // The node's own credential works on the node API.
    const alive = await fetch(`http://127.0.0.1:${apiPort}/api/v2/node-api/nodes/${nodeId}/alive`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
      body: JSON.stringify({ alive: true }),
    });
    expect(alive.status).toBe(200);
    expect((await stack.call('GET', `/nodes/${nodeId}`)).body).toMatchObject({
      alive: true,
      available: false,
    });
  });

  it('is the same node when the same MAC registers again; another host key needs the node’s own token', async () => {
    const again = await register({
      macs: ['52:54:00:bb:00:01'],
      bootMac: '52:54:00:bb:00:01',
      hostKey,
      facts,
    });
    expect(again.status).toBe(200);
    expect(again.body.node.id).toBe(nodeId);
    const other = keyPair();
    const refused = await register({
      macs: ['52:54:00:bb:00:01'],
      bootMac: '52:54:00:bb:00:01',
      hostKey: other,
      facts,
    });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/pinned host key/);
    expect((await stack.call('GET', `/nodes/${nodeId}`)).body.sshHostKey).toBe(hostKey);
    const repin = await register(
      { macs: ['52:54:00:bb:00:01'], bootMac: '52:54:00:bb:00:01', hostKey: other, facts },
      token(nodeId),
    );
    expect(repin.status).toBe(200);
    expect((await stack.call('GET', `/nodes/${nodeId}`)).body.sshHostKey).toBe(other);
    // With its own credential (from the last registration) it may re-pin too.
    const third = keyPair();
    const own = await register(
      { macs: ['52:54:00:bb:00:01'], bootMac: '52:54:00:bb:00:01', hostKey: third, facts, node: nodeId },
      repin.body.credential,
    );
    expect(own.status).toBe(200);
    expect((await stack.call('GET', `/nodes/${nodeId}`)).body.sshHostKey).toBe(third);
  });

  it('refuses a missing, wrong or expired token and bad bodies, storing nothing', async () => {
    const before = (await stack.call('GET', '/nodes')).body.nodes.length;
    const body = { macs: ['52:54:00:bb:00:09'], bootMac: '52:54:00:bb:00:09', hostKey: keyPair(), facts };
    expect((await register(body, null)).status).toBe(401);
    expect((await register(body, 'cbd1.1.0.AAAA')).status).toBe(401);
    expect(
      (await register(body, mintDiscoveryToken('another-secret-0123456789', { expires: 4e9, nodeId: null })))
        .status,
    ).toBe(401);
    const expired = await register(body, token(null, -10));
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/expired/);
    const bad = [
      '{not json',
      { ...body, hostKey: 'ssh-ed25519 not base64!' },
      { ...body, macs: ['zz'] },
      { ...body, bootMac: '52:54:00:bb:00:08' },
      { ...body, extra: 1 },
      { ...body, facts: { blob: 'x'.repeat(300_000) } },
    ];
    for (const b of bad) expect((await register(b)).status, JSON.stringify(b).slice(0, 80)).toBe(422);
    expect((await stack.call('GET', '/nodes')).body.nodes.length).toBe(before);
  });

  it('a discovery token can do nothing but register', async () => {
    for (const [method, path] of [
      ['GET', '/nodes'],
      ['POST', '/nodes'],
      ['GET', '/dhcp/leases'],
    ] as const)
      expect(
        (await stack.call(method, path, method === 'POST' ? { name: 'x.y.z' } : undefined, token())).status,
      ).toBe(403);
  });
});

describe('the installer’s side of the node API (reference §6.5 step 5)', () => {
  const put = (path: string, body: unknown, bearer: string) =>
    fetch(`http://127.0.0.1:${apiPort}/api/v2/node-api/${path}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const register = (body: unknown, bearer: string) =>
    fetch(`http://127.0.0.1:${apiPort}/api/v2/node-api/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const mac = '52:54:00:bb:00:21';
  const facts = { cpus: 1, disks: [{ name: 'sda', removable: false }] };

  it('a node sets bootenv local only at the end of an install, with its own credential', async () => {
    const token = mintDiscoveryToken(secret, { expires: Math.floor(Date.now() / 1000) + 600, nodeId: null });
    const first = await register({ macs: [mac], bootMac: mac, hostKey: keyPair(), facts }, token);
    expect(first.status).toBe(201);
    const id = first.body.node.id as number;
    const credential = first.body.credential as string;
    // Not in an install: refused with the rule, nothing changed.
    const early = await put(`nodes/${id}/bootenv`, { bootenv: 'local' }, credential);
    expect([early.status, early.body.field]).toEqual([409, 'bootenv']);
    expect((await stack.call('GET', `/nodes/${id}`)).body.bootenv).toBe('sledgehammer');
    expect((await stack.call('PUT', `/nodes/${id}`, { bootenv: 'debian-12-install' })).status).toBe(200);
    // Only `local`, only with the node's own credential.
    for (const bad of [{ bootenv: 'sledgehammer' }, { bootenv: 'local', extra: 1 }, '{nope'])
      expect((await put(`nodes/${id}/bootenv`, bad, credential)).status, JSON.stringify(bad)).toBe(422);
    expect((await put(`nodes/${id}/bootenv`, { bootenv: 'local' }, 'not-the-credential')).status).toBe(401);
    expect((await put(`nodes/${id}/bootenv`, { bootenv: 'local' }, testAdminToken)).status).toBe(401);
    expect((await stack.call('GET', `/nodes/${id}`)).body.bootenv).toBe('debian-12-install');
    const done = await put(`nodes/${id}/bootenv`, { bootenv: 'local' }, credential);
    expect([done.status, done.body.changed]).toEqual([200, true]);
    expect((await stack.call('GET', `/nodes/${id}`)).body.bootenv).toBe('local');
    await until(
      'the provisioner serves bootstate local',
      async () => {
        const r = await get(`/nodes/d${mac.replaceAll(':', '-')}.${domain}/bootstate`);
        return r.body.toString() === 'local\n';
      },
      10_000,
    );
    // The installed system re-registers its new key with its credential and no facts: the facts stay.
    const installedKey = keyPair();
    const join = await register({ macs: [mac], bootMac: mac, hostKey: installedKey, node: id }, credential);
    expect(join.status).toBe(200);
    const n = (await stack.call('GET', `/nodes/${id}`)).body;
    expect(n.sshHostKey).toBe(installedKey);
    expect(n.discovery.facts).toEqual(facts);
  });

  it('renders the install script with the disk and image the install chose', async () => {
    const n = (await stack.call('GET', `/nodes/d${mac.replaceAll(':', '-')}.${domain}`)).body;
    expect((await stack.call('PUT', `/nodes/${n.id}`, { bootenv: 'debian-12-install' })).status).toBe(200);
    const script = await until(
      'the install script',
      async () => {
        const r = (await get(`/boot/${mac.replaceAll(':', '-')}.ipxe`)).body.toString();
        return r.includes('crowbar.mode=install') ? r : null;
      },
      10_000,
    );
    expect(script).toMatch(/crowbar\.image=http:\/\/[\d.]+:\d+\/os\/debian-12\.tar\.zst/);
    expect(script).toContain(`crowbar.node=${n.name}`);
    // The token on the kernel line is the node's own: it may re-pin this node's key.
    const tok = /crowbar\.token=(\S+)/.exec(script)![1]!;
    const claims = checkDiscoveryToken(secret, tok, Math.floor(Date.now() / 1000));
    expect(claims.ok && claims.claims.nodeId).toBe(n.id);
  });
  it('renders the Debian installer’s preseed for the node, valid for debconf, ending in join.sh', async () => {
    const n = (await stack.call('GET', `/nodes/d${mac.replaceAll(':', '-')}.${domain}`)).body;
    expect((await stack.call('PUT', `/nodes/${n.id}`, { bootenv: 'debian-12-preseed-install' })).status).toBe(
      200,
    );
    const preseed = await until(
      'the preseed',
      async () => {
        const r = await get(`/nodes/${n.name}/preseed.cfg`);
        return r.status === 200 ? r.body.toString() : null;
      },
      10_000,
    );
    expect(preseed).not.toMatch(/\{\{/);
    expect(preseed).toContain(`d-i netcfg/get_hostname string ${n.name.split('.')[0]}`);
    expect(preseed).toContain(`d-i netcfg/get_domain string ${domain}`);
    const token = /join\.sh \| sh -s -- (\S+) --installed/.exec(preseed)?.[1];
    const claims = checkDiscoveryToken(secret, token ?? '', Math.floor(Date.now() / 1000));
    expect(claims.ok && claims.claims.nodeId).toBe(n.id);
    const file = join(dir, 'preseed.cfg');
    writeFileSync(file, preseed);
    // debconf's own parser (-c: check only) accepts every line: it warns on stderr about any it skips.
    const check = (f: string) => spawnSync('debconf-set-selections', ['-c', f], { encoding: 'utf8' });
    expect(check(file)).toMatchObject({ status: 0, stderr: '' });
    writeFileSync(join(dir, 'bad.cfg'), 'd-i this line has no type\n');
    expect(check(join(dir, 'bad.cfg')).stderr).toMatch(/Unknown type/);
    // The script the late_command runs is served and is valid shell.
    const script = (await get('/join.sh')).body.toString();
    expect(script).toContain(`API='http://127.0.0.1:${apiPort}'`);
    execFileSync('sh', ['-n'], { input: script });
  });
});
