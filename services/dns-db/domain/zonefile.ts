import type { ZoneSettings, ZoneView } from './snapshot.js';
import { zoneRecords } from './snapshot.js';

/**
 * A zone in RFC 1035 master-file form, absolute names: what another server (NSD in the benchmark, or
 * an operator's secondary) would load to serve exactly what we serve.
 */
export function toZoneFile(view: ZoneView, settings: ZoneSettings): string {
  const lines = [`; ${view.name} serial ${view.serial}, written by dns-db`];
  for (const r of zoneRecords(view, settings)) {
    const data = r.type === 'PTR' || r.type === 'NS' ? `${r.data}.` : r.data;
    lines.push(`${r.name}.\t${r.ttl}\tIN\t${r.type}\t${data}`);
  }
  return `${lines.join('\n')}\n`;
}
