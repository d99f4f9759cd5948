import { stringify } from 'yaml';
import type { Format } from './output.js';
import type { StreamEvent } from './sse.js';

interface Envelope {
  type?: string;
  time?: string;
  data?: Record<string, unknown>;
}

/** One line for a person: what happened to which noderole, node or deployment. */
function summary(type: string, data: Record<string, unknown>): string {
  const nr = data.noderole as { id?: number; role?: string; node?: string; state?: string } | undefined;
  if (nr)
    return `noderole ${nr.id} ${nr.role} on ${nr.node}${data.from ? `: ${data.from} → ${nr.state}` : ''}`;
  const node = data.node as { name?: string } | undefined;
  if (node?.name)
    return `node ${node.name}${Array.isArray(data.changed) ? ` (${data.changed.join(', ')})` : ''}${data.reason ? `: ${data.reason}` : ''}`;
  const dep = data.deployment as { name?: string; state?: string } | undefined;
  if (dep?.name) return `deployment ${dep.name} (${dep.state})`;
  const s = JSON.stringify(data);
  return s.length > 120 ? `${s.slice(0, 119)}…` : s || type;
}

/** An event as `crowbar events` prints it: one JSON line, a YAML document, or one line for a person. */
export function formatEvent(e: StreamEvent, format: Format): string {
  let env: Envelope;
  try {
    env = JSON.parse(e.data) as Envelope;
  } catch {
    env = { data: { text: e.data } };
  }
  if (e.event !== 'message') env = { type: e.event, data: env as Record<string, unknown> };
  if (format === 'json') return JSON.stringify({ seq: e.id, ...env });
  if (format === 'yaml') return `---\n${stringify({ seq: e.id, ...env }).trimEnd()}`;
  const type = (env.type ?? e.event).replace(/\.v\d+$/, '');
  return [e.id ?? '-', env.time ?? '', type, summary(type, env.data ?? {})].join('  ');
}
