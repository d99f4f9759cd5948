import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Finds a program from a Debian package, installing the package when it is missing and we are root;
 * otherwise fails with one sentence saying what to install.
 */
export function ensureDebianProgram(opts: {
  candidates: string[];
  pkg: string;
  why: string;
  log: (line: string) => void;
}): string {
  const found = () => opts.candidates.find((c) => existsSync(c));
  const bin = found();
  if (bin) return bin;
  if (process.getuid?.() === 0) {
    opts.log(`${opts.pkg} is missing; installing the Debian package ${opts.pkg} …`);
    const install = () =>
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', opts.pkg], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    try {
      install();
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'ignore' });
      install();
    }
    const now = found();
    if (now) return now;
  }
  throw new Error(`${opts.pkg} is not installed: run \`sudo apt-get install ${opts.pkg}\` (${opts.why})`);
}
