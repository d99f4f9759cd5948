/**
 * THE catalogue: every subject, payload schema and version Crowbar uses is defined under this folder
 * and collected here. Services import message definitions from this module only.
 */
import { type CommandDef, type EventDef, type MessageDef, type RpcDef, wireType } from './define.js';
import { diag, health, system } from './system.js';

export * from './define.js';
export * from './system.js';

/** Streams as data; the bus applies them idempotently at start. Names get the installation prefix. */
export interface StreamDecl {
  name: string;
  subjects: string[];
  retention: 'limits' | 'workqueue';
  maxAgeMs: number;
  duplicateWindowMs: number;
  maxMsgs?: number;
}

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
];

/** Durable consumers as data. `maxDeliver` bounds redelivery; past it a message is dead-lettered. */
export interface ConsumerDecl {
  stream: string;
  durable: string;
  /** Subject (wildcards allowed) this consumer reads; one per consumer. */
  filterSubject: string;
  ackWaitMs: number;
  maxDeliver: number;
}

export const consumers = {
  diag: (owner: string): ConsumerDecl => ({
    stream: 'DIAG',
    durable: `diag-${owner}`,
    filterSubject: diag.ping.subject,
    ackWaitMs: 30_000,
    maxDeliver: 5,
  }),
};

const all: MessageDef[] = [...Object.values(system), ...Object.values(diag), ...Object.values(health)];

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
