import { z } from 'zod';

/**
 * The three kinds of message Crowbar sends:
 * - event: a fact, past tense, kept in the EVENTS stream for replay;
 * - command: work for one service, kept in that service's work-queue stream until acked;
 * - rpc: a synchronous question answered by one instance of a service.
 * Subjects are relative; the bus adds the installation prefix (`crowbar.` by default).
 */
export interface EventDef<S extends z.ZodType = z.ZodType> {
  kind: 'event';
  type: string;
  version: number;
  subject: string;
  stream: 'EVENTS';
  schema: S;
  example: z.input<S>;
}

export interface CommandDef<S extends z.ZodType = z.ZodType> {
  kind: 'command';
  type: string;
  version: number;
  subject: string;
  stream: string;
  schema: S;
  example: z.input<S>;
}

export interface RpcDef<Q extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  kind: 'rpc';
  type: string;
  version: number;
  /** Owning service; the subject is rpc.<service>.<method>.v<version>. */
  service: string;
  subject: string;
  request: Q;
  response: R;
  example: z.input<Q>;
  exampleResponse: z.input<R>;
  /** Answering it changes nothing, so its owner may answer in a read-only transaction. */
  readOnly: boolean;
}

export type MessageDef = EventDef | CommandDef | RpcDef;

export function event<S extends z.ZodType>(
  type: string,
  version: number,
  schema: S,
  example: z.input<S>,
): EventDef<S> {
  return {
    kind: 'event',
    type,
    version,
    subject: `evt.${type}.v${version}`,
    stream: 'EVENTS',
    schema,
    example,
  };
}

export function command<S extends z.ZodType>(
  stream: string,
  type: string,
  version: number,
  schema: S,
  example: z.input<S>,
): CommandDef<S> {
  return {
    kind: 'command',
    type,
    version,
    subject: `cmd.${stream.toLowerCase()}.${type}.v${version}`,
    stream,
    schema,
    example,
  };
}

export function rpc<Q extends z.ZodType, R extends z.ZodType>(
  service: string,
  method: string,
  version: number,
  request: Q,
  response: R,
  examples: { request: z.input<Q>; response: z.input<R> },
  opts: { readOnly?: boolean } = {},
): RpcDef<Q, R> {
  return {
    kind: 'rpc',
    type: `${service}.${method}`,
    version,
    service,
    subject: `rpc.${service}.${method}.v${version}`,
    request,
    response,
    example: examples.request,
    exampleResponse: examples.response,
    readOnly: opts.readOnly ?? false,
  };
}

/** Wire name of a message type: `<type>.v<version>`, carried in every envelope. */
export const wireType = (d: { type: string; version: number }) => `${d.type}.v${d.version}`;

/** Streams as data; the bus applies them idempotently at start. Names get the installation prefix. */
export interface StreamDecl {
  name: string;
  subjects: string[];
  retention: 'limits' | 'workqueue';
  maxAgeMs: number;
  duplicateWindowMs: number;
  maxMsgs?: number;
}

/** Durable consumers as data. `maxDeliver` bounds redelivery; past it a message is dead-lettered. */
export interface ConsumerDecl {
  stream: string;
  durable: string;
  /**
   * Subject (wildcards allowed) this consumer reads; one per consumer. Left out, `consume` takes the
   * family its handlers share (`filterFor`), so no service writes a subject.
   */
  filterSubject?: string;
  ackWaitMs: number;
  maxDeliver: number;
}

/**
 * The one filter subject covering a family of messages: `evt.node.>` for node.created/changed/deleted,
 * `cmd.jig.>` for the jig commands (a later type or version of the family then reaches the consumer,
 * which dead-letters what it has no handler for, instead of lying unread). Throws when the messages
 * share no family (a mistake in the caller, found at start).
 */
export function filterFor(...defs: { subject: string }[]): string {
  const first = defs[0];
  if (!first) throw new Error('filterFor needs at least one message');
  const split = defs.map((d) => d.subject.split('.').slice(0, -2));
  const common: string[] = [];
  for (let i = 0; i < split[0]!.length; i++) {
    const t = split[0]![i]!;
    if (!split.every((s) => s[i] === t)) break;
    common.push(t);
  }
  if (common.length < 2)
    throw new Error(`no common subject family for ${defs.map((d) => d.subject).join(', ')}`);
  return `${common.join('.')}.>`;
}

/**
 * A reference to a record: its id, or its name as printable text (a NUL or other control character is
 * the name of nothing, and PostgreSQL refuses NUL outright).
 */
export const recordRef = (maxLength = 255) =>
  z.union([
    z.number().int().positive(),
    z
      .string()
      .min(1)
      .max(maxLength)
      .regex(/^\P{Cc}+$/u, 'must be an id or a name without control characters'),
  ]);
