import type { AllocationSummary, NodeSummary } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';

/**
 * Name filters (reference §6.7): a matcher selects allocations, a template names them. Both are parsed
 * once when a filter is written, so a bad one is refused with 422 instead of silently matching nothing
 * (the original treated unknown tests as "no match").
 */
export interface FilterContext {
  node: NodeSummary;
  allocation: AllocationSummary;
}

type Test = (c: FilterContext) => boolean;
export type Matcher = (c: FilterContext) => boolean;

/** Node fields a matcher may compare with `node.attr.<field> == "x"`. */
const nodeAttrs: Record<string, (n: NodeSummary) => string> = {
  name: (n) => n.name,
  hostname: (n) => hostname(n.name),
  id: (n) => String(n.id),
  admin: (n) => String(n.admin),
  system: (n) => String(n.system),
  alive: (n) => String(n.alive),
  available: (n) => String(n.available),
  bootenv: (n) => n.bootenv,
  deployment: (n) => n.deployment,
};

const hostname = (fqdn: string) => fqdn.split('.')[0] ?? fqdn;

const eqTests: Record<string, (c: FilterContext) => string> = {
  'net.category': (c) => c.allocation.category,
  'net.name': (c) => c.allocation.network,
  'range.name': (c) => c.allocation.range,
  'deployment.name': (c) => c.node.deployment,
};

/** Splits on commas that are not inside double quotes. */
function splitTests(src: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of src) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

function parseTest(t: string): Test {
  let m = /^([a-z.]+)\s*==\s*"([^"]*)"$/.exec(t);
  if (m) {
    const [, key = '', want = ''] = m;
    const get = eqTests[key];
    if (get) return (c) => get(c) === want;
    const attr = /^node\.attr\.([a-z_]+)$/.exec(key)?.[1];
    if (attr !== undefined) {
      const read = nodeAttrs[attr];
      if (!read)
        throw new ValidationError(
          `matcher: unknown node attribute "${attr}" (known: ${Object.keys(nodeAttrs).join(', ')})`,
          { field: 'matcher' },
        );
      return (c) => read(c.node) === want;
    }
  }
  m = /^node\.role\s+has\s+"([^"]*)"$/.exec(t);
  if (m) {
    const role = m[1] ?? '';
    return (c) => c.node.roles.includes(role);
  }
  throw new ValidationError(
    `matcher: cannot read test '${t}' (expected net.category|net.name|range.name|deployment.name|node.attr.<field> == "x", or node.role has "x")`,
    { field: 'matcher' },
  );
}

/** Parses a matcher; an empty one matches everything. Throws ValidationError naming the bad test. */
export function parseMatcher(src: string): Matcher {
  if (src.trim() === '') return () => true;
  const tests = splitTests(src).map(parseTest);
  return (c) => tests.every((t) => t(c));
}

type Part = string | ((c: FilterContext) => string | null);
export type Template = (c: FilterContext) => string | null;

const placeholders: Record<string, (c: FilterContext) => string | null> = {
  'node.name': (c) => c.node.name,
  'node.hostname': (c) => hostname(c.node.name),
  'node.id': (c) => String(c.node.id),
  // The first MAC, as a label: 52-54-00-12-34-56. No MAC means no name from this template.
  'node.mac': (c) => c.node.macs[0]?.toLowerCase().replace(/:/g, '-') ?? null,
  'node.deployment': (c) => c.node.deployment,
  'network.name': (c) => c.allocation.network,
  'network.range': (c) => c.allocation.range,
  'network.category': (c) => c.allocation.category,
};

/** Parses `{{node.hostname}}-{{network.name}}`; literal text may hold letters, digits, `.`, `-`, `_`. */
export function parseTemplate(src: string): Template {
  const parts: Part[] = [];
  const re = /\{\{\s*([a-z.]+)\s*\}\}/g;
  let last = 0;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    parts.push(src.slice(last, m.index));
    const f = placeholders[m[1] ?? ''];
    if (!f)
      throw new ValidationError(
        `template: unknown placeholder {{${m[1]}}} (known: ${Object.keys(placeholders).join(', ')})`,
        { field: 'template' },
      );
    parts.push(f);
    last = re.lastIndex;
  }
  parts.push(src.slice(last));
  for (const p of parts) {
    if (typeof p === 'string' && !/^[A-Za-z0-9._-]*$/.test(p))
      throw new ValidationError(
        `template: literal text '${p}' may only hold letters, digits, '.', '-', '_'`,
        {
          field: 'template',
        },
      );
  }
  return (c) => {
    let out = '';
    for (const p of parts) {
      const v = typeof p === 'string' ? p : p(c);
      if (v === null) return null;
      out += v;
    }
    return out.toLowerCase();
  };
}

/** Checks a filter's matcher and template together (for create/update). */
export function checkFilter(f: { matcher: string; template: string }) {
  return { matcher: parseMatcher(f.matcher), template: parseTemplate(f.template) };
}
