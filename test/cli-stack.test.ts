import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { pickPort } from '../infra/ports.js';
import { generateKeyPair } from '../shared/ssh/index.js';
import { runCrowbar } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { startSshd, type TestSshd } from './helpers/sshd.js';
import { type Stack, startStack, testAdminToken, testReadOnlyToken } from './helpers/stack.js';

// The crowbar CLI as an operator runs it: the real binary (package.json "bin") in a child process,
// against inventory, annealer, jig-runner and the gateway, with a real sshd for the script roles.
const root = fileURLToPath(new URL('../', import.meta.url));
let t: TestEnv;
let s: Stack;
let sshd: TestSshd;
let dir: string;
let endpoint: string;

beforeAll(async () => {
  dir = mkdtempSync(`${tmpdir()}/crowbar-cli-test-`);
  const keys = generateKeyPair('crowbar-test');
  writeFileSync(`${dir}/cluster_key`, keys.privateKey, { mode: 0o600 });
  sshd = await startSshd({ authorizedKeys: [keys.publicKey] });
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner', 'gateway'], {
    CROWBAR_SSH_KEY: `${dir}/cluster_key`,
    CROWBAR_PROBE_AFTER_RUN: 'false',
    CROWBAR_ANNEAL_PASS_MS: '100',
    LOG_LEVEL: 'silent',
  });
  endpoint = s.api.replace(/\/api\/v2$/, '');
}, 120_000);
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
  await sshd?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `crowbar …` as the user would, with this file's endpoint, token and config file. */
const crowbar = (args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000) =>
  runCrowbar(
    args,
    {
      HOME: dir,
      CROWBAR_CONFIG: `${dir}/config.json`,
      CROWBAR_ENDPOINT: endpoint,
      CROWBAR_KEY: testAdminToken,
      ...env,
    },
    timeoutMs,
  );
const json = async (args: string[]) => {
  const r = await crowbar([...args, '--format', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};
const nodeJson = (name: string) =>
  JSON.stringify({
    name,
    alive: true,
    sshHostKey: sshd.hostKey,
    hint: { ssh: { host: sshd.host, port: sshd.port } },
  });

describe('crowbar CLI against a running stack', () => {
  it('creates a deployment, binds a node, commits, and converge shows progress and exits 0', async () => {
    const created = await crowbar(['deployments', 'create', 'web']);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/name\s*│\s*web/);
    expect((await json(['nodes', 'create', nodeJson('web1.lab.crowbar.test')])).name).toBe(
      'web1.lab.crowbar.test',
    );
    expect((await json(['nodes', 'move', 'web1.lab.crowbar.test', 'to', 'web'])).deployment).toBe('web');
    const bound = await json(['nodes', 'bind', 'web1.lab.crowbar.test', 'to', 'test-writer']);
    expect(bound).toMatchObject({ role: 'test-writer', deployment: 'web', state: 'proposed' });
    // The script lingers 3 s, so converge sees it working before it is done.
    await json(['noderoles', 'set', String(bound.id), 'attrib', 'test-sleep', 'to', '3']);
    const table = await crowbar(['node_roles', 'list', '--deployment', 'web']);
    expect(table.stdout).toMatch(/test-writer.*proposed/);
    expect((await crowbar(['nodes', 'commit', 'web1.lab.crowbar.test'])).code).toBe(0);
    expect((await crowbar(['deployments', 'commit', 'web'])).code).toBe(0);

    const r = await crowbar(['converge', 'web', '--timeout', '60']);
    expect(r.stderr).toMatch(
      /noderoles: 0\/1 settled \(active 0, (transition 1, todo 0|transition 0, todo 1)/,
    );
    expect(r.stderr).toMatch(
      /noderoles: 1\/1 settled \(active 1, transition 0, todo 0, blocked 0, error 0\)/,
    );
    expect(r.stdout).toBe('deployment web converged: 1 active\n');
    expect(r.code).toBe(0);
    const nr = await json(['noderoles', 'show', String(bound.id)]);
    expect(nr.state).toBe('active');
  });

  it('a failing role makes converge exit 1 naming the noderole, with the tail of its run log', async () => {
    await json(['deployments', 'create', '{"name":"broken"}']);
    await json(['nodes', 'create', nodeJson('bad1.lab.crowbar.test')]);
    await json(['nodes', 'move', 'bad1.lab.crowbar.test', 'to', 'broken']);
    const failing = await json(['roles', 'bind', 'test-fail', 'to', 'bad1.lab.crowbar.test']);
    await json(['nodes', 'commit', 'bad1.lab.crowbar.test']);
    await json(['deployments', 'commit', 'broken']);

    const r = await crowbar(['converge', 'broken', '--timeout', '60']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('deployment broken failed: 1 noderole in error');
    expect(r.stderr).toContain(
      `noderole ${failing.id}: test-fail on bad1.lab.crowbar.test (deployment broken) failed`,
    );
    expect(r.stderr).toMatch(/ {2}\| .*failing because test\/should_fail is true/);

    const j = await crowbar(['converge', 'broken', '--format', 'json']);
    expect(j.code).toBe(1);
    const out = JSON.parse(j.stdout);
    expect(out).toMatchObject({ status: 'failed', counts: { active: 1, error: 1 } });
    expect(out.failed).toEqual([
      expect.objectContaining({ id: failing.id, role: 'test-fail', runlog: expect.stringContaining('exit') }),
    ]);
  });

  it('errors are one sentence with documented exit codes', async () => {
    const wrong = await crowbar(['nodes', 'list'], { CROWBAR_KEY: 'not-the-token-0123456789' });
    expect([wrong.code, wrong.stdout]).toEqual([2, '']);
    expect(wrong.stderr).toBe(
      `crowbar: Crowbar at ${endpoint} refused the token (invalid operator token): set CROWBAR_KEY, pass --key or run \`crowbar login\`.\n`,
    );
    const none = await crowbar(['nodes', 'list'], { CROWBAR_KEY: undefined });
    expect([none.code, none.stderr]).toEqual([
      2,
      'crowbar: no operator token: set CROWBAR_KEY, pass --key or run `crowbar login`\n',
    ]);
    const readOnly = await crowbar(['deployments', 'create', 'nope'], { CROWBAR_KEY: testReadOnlyToken });
    expect([readOnly.code, readOnly.stderr]).toEqual([
      2,
      'crowbar: not allowed: the read-only token cannot change anything.\n',
    ]);

    const port = await pickPort(0);
    const away = await crowbar(['nodes', 'list'], { CROWBAR_ENDPOINT: `http://127.0.0.1:${port}` });
    expect([away.code, away.stderr]).toEqual([
      3,
      `crowbar: no Crowbar at http://127.0.0.1:${port}: connection refused\n`,
    ]);

    const bad = await crowbar(['deployments', 'create', '{"name":"Bad Name"}']);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/^crowbar: .*must start with a letter.* \(field name\)\.\n$/);
    const missing = await crowbar(['nodes', 'show', 'ghost.lab.crowbar.test']);
    expect(missing.code).toBe(4);
    expect(missing.stderr.split('\n')).toHaveLength(2);
    expect(missing.stderr).toMatch(/^crowbar: .*ghost\.lab\.crowbar\.test.*\n$/);

    const usage = await crowbar(['nodes', 'bind', 'web1.lab.crowbar.test', 'onto', 'test-top']);
    expect([usage.code, usage.stderr]).toEqual([
      64,
      'crowbar: expected "to" in: crowbar nodes bind <node> to <role>\n',
    ]);
    expect((await crowbar(['nodes', 'frobnicate'])).code).toBe(64);
  });

  it('prints tables, JSON and YAML', async () => {
    const table = await crowbar(['nodes', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/│ id\s*│ name\s*│ state/);
    expect(table.stdout).toContain('web1.lab.crowbar.test');
    const yaml = await crowbar(['deployments', 'list', '--format', 'yaml']);
    expect(parseYaml(yaml.stdout).deployments.map((d: { name: string }) => d.name)).toEqual(
      expect.arrayContaining(['system', 'web', 'broken']),
    );
    expect((await json(['deployments', 'noderoles', 'web'])).noderoles).toHaveLength(1);
  });

  it('events replays from --since with a filter, one JSON envelope per line', async () => {
    const r = await crowbar([
      'events',
      '--since',
      '0',
      '--filter',
      'deployment.committed',
      '--count',
      '2',
      '--format',
      'json',
    ]);
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.map((e) => [e.type, e.data.deployment.name])).toEqual([
      ['deployment.committed.v1', 'web'],
      ['deployment.committed.v1', 'broken'],
    ]);
    expect(events[0].seq).toBeLessThan(events[1].seq);
    // Resuming after the first id gives the second, exactly once.
    const again = await crowbar([
      'events',
      '--since',
      String(events[0].seq),
      '--filter',
      'deployment.committed',
      '--count',
      '1',
    ]);
    expect(again.stdout).toMatch(
      new RegExp(`^${events[1].seq}  \\S+  deployment.committed  deployment broken \\(committed\\)\n$`),
    );
    expect((await crowbar(['events', '--filter', 'not a pattern'])).code).toBe(4);
  });

  it('login checks and saves the endpoint and token; later commands use the file', async () => {
    const cfg = `${dir}/login/config.json`;
    const bad = await crowbar(['login', '--key', 'wrong-token-0123456789'], {
      CROWBAR_CONFIG: cfg,
      CROWBAR_KEY: undefined,
    });
    expect(bad.code).toBe(2);
    const r = await crowbar(['login', '--endpoint', endpoint, '--key', testAdminToken], {
      CROWBAR_CONFIG: cfg,
      CROWBAR_KEY: undefined,
      CROWBAR_ENDPOINT: undefined,
    });
    expect([r.code, r.stdout]).toEqual([0, `signed in to ${endpoint} as admin; saved to ${cfg}\n`]);
    expect(statSync(cfg).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(cfg, 'utf8'))).toEqual({ endpoint, key: testAdminToken });
    const who = await crowbar(['whoami', '--format', 'json'], {
      CROWBAR_CONFIG: cfg,
      CROWBAR_KEY: undefined,
      CROWBAR_ENDPOINT: undefined,
    });
    expect([who.code, JSON.parse(who.stdout)]).toEqual([0, { role: 'admin' }]);
  });

  it('bash completion completes objects and verbs', async () => {
    const script = (await crowbar(['completion', 'bash'])).stdout;
    writeFileSync(`${dir}/completion.bash`, script);
    const r = await new Promise<string>((resolve, reject) => {
      const sh = spawn(
        'bash',
        [
          '-c',
          `source ${dir}/completion.bash; COMP_WORDS=(crowbar nodes b); COMP_CWORD=2; _crowbar; echo "\${COMPREPLY[*]}";` +
            ` COMP_WORDS=(crowbar dep); COMP_CWORD=1; _crowbar; echo "\${COMPREPLY[*]}"`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      sh.stdout.on('data', (b: Buffer) => {
        out += b;
      });
      sh.on('error', reject);
      sh.on('close', () => resolve(out));
    });
    expect(r).toBe('bind\ndeployments deployment_roles deploymentroles\n');
  });

  it('is the package bin, so npx crowbar runs it in the repo', async () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
    expect(pkg.bin).toEqual({ crowbar: 'infra/cli/crowbar.mjs' });
    const help = await crowbar(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
    expect(help.stdout).toMatch(/converge \[options\] \[deployment\]/);
    const npx = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      // As a user's shell runs it: not with the package an outer `npx -p node@24 …` asked for.
      const { npm_config_package: _outer, ...env } = process.env;
      const child = spawn('npx', ['--no-install', 'crowbar', '--version'], {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(npx).toEqual({ code: 0, out: `${pkg.version}\n` });
  });
});
