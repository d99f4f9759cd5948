import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The boundaries DESIGN §2 draws, held by a check rather than by care: a service imports only its own
 * files and shared/ (services talk over NATS, never through each other's code), shared/ imports no
 * service, and neither imports infra/ or test support. Test files and the web UI (its own build) aside.
 */
const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory())
      return f === 'node_modules' || p.endsWith('services/gateway/ui') ? [] : sources(p);
    return /\.(ts|mts)$/.test(f) && !/\.test\.ts$/.test(f) ? [p] : [];
  });
}

/** `from '…'` and `import('…')` specifiers that are relative paths. */
const relativeImports = (text: string) =>
  [...text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);

/** Why `file` may not import `target` (repo-relative paths), or null when it may. */
function violation(file: string, target: string): string | null {
  const [top, svc] = file.split('/');
  const [ttop, tsvc] = target.split('/');
  if (top === 'services') {
    if (ttop === 'services' && tsvc !== svc) return `service ${svc} imports service ${tsvc}`;
    if (ttop === 'infra' || ttop === 'test' || ttop === 'bench') return `service ${svc} imports ${ttop}/`;
  }
  if (top === 'shared' && ['services', 'infra', 'test', 'bench'].includes(ttop!))
    return `shared/ imports ${ttop}/`;
  return null;
}

describe('code boundaries', () => {
  it('services import only themselves and shared/; shared/ imports no service, infra or tests', () => {
    const found: string[] = [];
    for (const f of [...sources(join(root, 'services')), ...sources(join(root, 'shared'))]) {
      const file = relative(root, f);
      for (const spec of relativeImports(readFileSync(f, 'utf8'))) {
        const target = relative(root, resolve(dirname(f), spec));
        const why = violation(file, target);
        if (why) found.push(`${file} → ${target}: ${why}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('catches a deliberate cross-service import and an infra import', () => {
    expect(violation('services/gateway/app.ts', 'services/inventory/service.js')).toMatch(
      /imports service inventory/,
    );
    expect(violation('services/dns-db/x.ts', 'infra/packages.js')).toMatch(/imports infra/);
    expect(violation('shared/bus/bus.ts', 'services/annealer/scheduler.js')).toMatch(
      /shared\/ imports services/,
    );
    expect(violation('services/gateway/app.ts', 'shared/errors.js')).toBeNull();
    expect(
      relativeImports("import { a } from '../../services/x/y.js';\nconst m = await import('../z.js');"),
    ).toEqual(['../../services/x/y.js', '../z.js']);
  });
});
