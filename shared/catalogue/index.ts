/**
 * THE catalogue: every subject, payload schema and version Crowbar uses is defined under this folder
 * and collected here. Services import message definitions from this module only.
 */

import { alivenessMessages, alivenessStreams } from './aliveness.js';
import { annealerMessages, annealerStreams } from './annealer.js';
import {
  type CommandDef,
  type ConsumerDecl,
  type EventDef,
  type MessageDef,
  type RpcDef,
  type StreamDecl,
  wireType,
} from './define.js';
import { dhcpMessages, dhcpStreams } from './dhcp.js';
import { dnsMessages, dnsStreams } from './dns.js';
import { inventoryAnnealRpcs, inventoryEvents, inventoryRpcs, inventoryStreams } from './inventory.js';
import { inventoryOpRpcs } from './inventory-ops.js';
import { ipamMessages, ipamRpcs, ipamStreams } from './ipam.js';
import { provisionerMessages, provisionerStreams } from './provisioner.js';
import { diag, health, roleRun, system } from './system.js';

export * from './aliveness.js';
export * from './annealer.js';
export * from './define.js';
export * from './dhcp.js';
export * from './dns.js';
export * from './inventory.js';
export * from './inventory-ops.js';
export * from './ipam.js';
export * from './json.js';
export * from './provisioner.js';
export * from './system.js';

const day = 24 * 3600 * 1000;
export const streams: StreamDecl[] = [
  { name: 'EVENTS', subjects: ['evt.>'], retention: 'limits', maxAgeMs: 7 * day, duplicateWindowMs: 120_000 },
  { name: 'DEAD', subjects: ['dead.>'], retention: 'limits', maxAgeMs: 30 * day, duplicateWindowMs: 120_000 },
  {
    name: 'DIAG',
    subjects: ['cmd.diag.>'],
    retention: 'workqueue',
    maxAgeMs: day,
    duplicateWindowMs: 120_000,
  },
  ...inventoryStreams,
  ...annealerStreams,
  ...ipamStreams,
  ...dnsStreams,
  ...dhcpStreams,
  ...provisionerStreams,
  ...alivenessStreams,
];

export const consumers = {
  /** A durable consumer of the EVENTS stream; its filter is the subject family its handlers share. */
  events: (durable: string, maxDeliver = 10): ConsumerDecl => ({
    stream: 'EVENTS',
    durable,
    ackWaitMs: 30_000,
    maxDeliver,
  }),
  diag: (owner: string): ConsumerDecl => ({
    stream: 'DIAG',
    durable: `diag-${owner}`,
    filterSubject: diag.ping.subject,
    ackWaitMs: 30_000,
    maxDeliver: 5,
  }),
};

const all: MessageDef[] = [
  ...Object.values(system),
  ...Object.values(diag),
  ...Object.values(health),
  ...Object.values(roleRun),
  ...Object.values(inventoryEvents),
  ...Object.values(inventoryRpcs),
  ...Object.values(inventoryAnnealRpcs),
  ...Object.values(inventoryOpRpcs),
  ...Object.values(annealerMessages),
  ...(Object.values(ipamMessages) as MessageDef[]),
  ...(Object.values(ipamRpcs) as MessageDef[]),
  ...(Object.values(dnsMessages) as MessageDef[]),
  ...(Object.values(dhcpMessages) as MessageDef[]),
  ...(Object.values(provisionerMessages) as MessageDef[]),
  ...(Object.values(alivenessMessages) as MessageDef[]),
];

export const catalogue = { system, diag, health } as const;

/** Every message definition, keyed by its wire type (`<type>.v<version>`). */
export const byWireType: ReadonlyMap<string, MessageDef> = (() => {
  const m = new Map<string, MessageDef>();
  for (const d of all) {
    const key = d.kind === 'rpc' ? d.subject : wireType(d);
    if (m.has(key)) throw new Error(`catalogue: ${key} defined twice`);
    m.set(key, d);
  }
  return m;
})();

export const allMessages: readonly MessageDef[] = all;
export type { CommandDef, EventDef, RpcDef };
