import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { flattenAttributes } from '../domain/flatten.js';
import { parseWallListing } from '../domain/wall.js';

// The node-side runner, run with the real bash it will meet on a node (no SSH needed to test its contract).
const runner = fileURLToPath(new URL('./runner.sh', import.meta.url));
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(data: Record<string, unknown>, scripts: Record<string, string>) {
  const dir = mkdtempSync(`${tmpdir()}/crowbar-runner-`);
  dirs.push(dir);
  mkdirSync(`${dir}/role-x`);
  writeFileSync(`${dir}/attrs.json`, JSON.stringify(data));
  writeFileSync(`${dir}/attrs.flat`, flattenAttributes(data));
  for (const [name, body] of Object.entries(scripts)) writeFileSync(`${dir}/role-x/${name}`, body);
  const r = spawnSync('bash', [runner, dir, 'role-x'], { encoding: 'utf8', timeout: 20_000 });
  const listing = execFileSync(
    'bash',
    [
      '-c',
      `cd '${dir}/attrs' && find . -name wall -type f | sort | while read -r f; do p=\${f%/wall}; printf '%s\\t' "\${p#./}"; base64 -w0 "$f"; echo; done`,
    ],
    { encoding: 'utf8' },
  );
  return { code: r.status, out: r.stdout + r.stderr, ...parseWallListing(listing) };
}

describe('script-jig runner', () => {
  it('gives scripts read_attribute, has_attribute, get_keys and write_attribute', () => {
    const r = run(
      { a: { s: 'two words', n: 7, f: false, list: ['x', 'y'], m: { k1: 'v1', k2: 'v2' } } },
      {
        '10-read.sh': [
          'write_attribute out/s "$(read_attribute a/s)"',
          'write_attribute out/n "$(read_attribute a/n)"',
          'write_attribute out/f "$(read_attribute a/f)"',
          'write_attribute out/second "$(read_attribute a/list/1)"',
          'write_attribute out/keys "$(get_keys a/m | tr "\\n" ,)"',
          'has_attribute a/s && write_attribute out/has yes',
          'has_attribute a/missing || write_attribute out/missing no',
          'write_attribute out/empty "$(read_attribute a/missing)"',
        ].join('\n'),
        '20-order.sh': 'write_attribute out/order "$(cat "$TMPDIR/attrs/out/s/wall") then 20"\n',
      },
    );
    expect(r.code).toBe(0);
    expect(r.wall).toEqual({
      out: {
        s: 'two words',
        n: 7,
        f: false,
        second: 'y',
        keys: 'k1,k2,',
        has: 'yes',
        missing: 'no',
        order: 'two words then 20',
      },
    });
    expect(r.out).toMatch(/== 10-read.sh[\s\S]*== 20-order.sh[\s\S]*== done/);
  });

  it('stops at the first failing script with its exit code, and later scripts do not run', () => {
    const r = run(
      {},
      { '10-fail.sh': 'echo about to fail\nfalse\necho never\n', '20-after.sh': 'write_attribute ran yes\n' },
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain('== 10-fail.sh failed with exit code 1');
    expect(r.out).not.toContain('never');
    expect(r.wall).toEqual({});
  });
});
