import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { checkRoleGraph, readBarclamps } from './barclamp.js';

const shipped = fileURLToPath(new URL('../barclamps', import.meta.url));
const testBarclamp = fileURLToPath(new URL('../barclamps-test', import.meta.url));
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function barclampDir(yaml: string, scripts: Record<string, string> = {}) {
  const d = mkdtempSync(`${tmpdir()}/crowbar-bc-`);
  dirs.push(d);
  writeFileSync(`${d}/x.yml`, yaml);
  for (const [path, body] of Object.entries(scripts)) {
    mkdirSync(`${d}/scripts/${path.split('/')[0]}`, { recursive: true });
    writeFileSync(`${d}/scripts/${path}`, body);
  }
  return d;
}

describe('barclamp catalogue', () => {
  it('the shipped barclamps load and form a valid graph', () => {
    const specs = [...readBarclamps(shipped), ...readBarclamps(testBarclamp)];
    const roles = specs.flatMap((b) => b.roles);
    for (const name of [
      'crowbar-managed-node',
      'crowbar-admin-node',
      'crowbar-access',
      'crowbar-installed-node',
      'crowbar-joined-node',
      'network-server',
      'dns-client',
      'provisioner-os-install',
    ]) {
      expect(roles.map((r) => r.name)).toContain(name);
    }
    expect(() => checkRoleGraph(roles)).not.toThrow();
    expect(roles.find((r) => r.name === 'crowbar-access')?.scripts['10-authorized-keys.sh']).toContain(
      'authorized_keys',
    );
  });

  it.each([
    [
      'a cycle',
      'roles:\n  - {name: a, jig: noop, requires: [b]}\n  - {name: b, jig: noop, requires: [c]}\n  - {name: c, jig: noop, requires: [a]}',
      /cycle: a -> b -> c -> a/,
    ],
    [
      'an unresolved require',
      'roles:\n  - {name: a, jig: noop, requires: [nowhere]}',
      /role a requires nowhere, which no barclamp defines/,
    ],
  ])('rejects %s with a clear error', (_what, roles, message) => {
    const d = barclampDir(`barclamp: {name: x}\n${roles}\n`);
    expect(() => checkRoleGraph(readBarclamps(d).flatMap((b) => b.roles))).toThrow(message);
  });

  it.each([
    ['an unknown flag', 'roles:\n  - {name: a, jig: noop, flags: [sticky]}', /roles\.0\.flags\.0/],
    ['an unknown jig', 'roles:\n  - {name: a, jig: chef}', /roles\.0\.jig/],
    [
      'a script role without scripts',
      'roles:\n  - {name: a, jig: script}',
      /role a uses the script jig but has no scripts/,
    ],
    [
      'a service role without an owner',
      'roles:\n  - {name: a, jig: service}',
      /role a uses the service jig but names no owner/,
    ],
    ['a bad role name', 'roles:\n  - {name: 9lives, jig: noop}', /roles\.0\.name/],
  ])('rejects %s, naming the field', (_what, roles, message) => {
    const d = barclampDir(`barclamp: {name: x}\n${roles}\n`);
    expect(() => readBarclamps(d)).toThrow(message);
  });

  it('provides satisfy requires', () => {
    expect(() =>
      checkRoleGraph([
        { name: 'joined', requires: [], provides: ['installed'] },
        { name: 'app', requires: ['installed'], provides: [] },
      ]),
    ).not.toThrow();
  });
});
