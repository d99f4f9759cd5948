/**
 * `npm run bench -- <name> [args]`: runs bench/<name>.ts, which prints its figures and ends with one JSON
 * line `{"bench":…,"ours":…,"baseline":…,"ratio":…}`. Without a name, lists the benchmarks.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../bench/', import.meta.url));
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3));
const [name, ...rest] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join('|')}>`);
  process.exit(name ? 1 : 0);
}
process.argv = [process.argv[0]!, `${dir}${name}.ts`, ...rest];
await import(`${dir}${name}.ts`);
