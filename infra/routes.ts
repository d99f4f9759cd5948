import { execFileSync } from 'node:child_process';

/** The IPv4 benchmarking range every lab and test network is addressed from. */
export const benchmarkingRange = '198.18.0.0/15';

/**
 * Adds `blackhole` routes in the root namespace for the test/lab ranges unless a route for that exact
 * prefix already exists, so traffic to a node that does not exist never leaves the machine.
 * Returns what it did; without root (or without `ip`) it says so instead of failing.
 */
export function ensureBlackholeRoutes(prefixes: string[]): string[] {
  const notes: string[] = [];
  for (const prefix of prefixes) {
    const v6 = prefix.includes(':');
    try {
      const existing = execFileSync('ip', [v6 ? '-6' : '-4', 'route', 'show', prefix], { encoding: 'utf8' });
      if (existing.trim()) continue;
      execFileSync('ip', [v6 ? '-6' : '-4', 'route', 'add', 'blackhole', prefix], { stdio: 'ignore' });
      notes.push(`added blackhole route ${prefix}`);
    } catch {
      notes.push(`could not add blackhole route ${prefix} (needs root and iproute2)`);
    }
  }
  return notes;
}
