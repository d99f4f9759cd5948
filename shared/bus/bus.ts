import { randomUUID } from 'node:crypto';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import {
  type CommandDef,
  type EventDef,
  type RpcDef,
  type ServiceName,
  type StreamDecl,
  wireType,
} from '../catalogue/index.js';
import {
  CrowbarError,
  errorFromBody,
  isDatabaseUnavailable,
  toErrorBody,
  UnavailableError,
  ValidationError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { AccessGuard, inboxPrefixFor } from './access.js';
import { type Envelope, envelopeSchema, type Lineage } from './envelope.js';
import { JsPublisher } from './publisher.js';
import { applyStreams } from './streams.js';

export interface BusOptions {
  url: string;
  prefix: string;
  /** Name of the sending service instance, stamped as `source` on every envelope. */
  source: string;
  log: Logger;
  streams?: readonly StreamDecl[];
  /** JetStream replicas of those streams (CROWBAR_STREAM_REPLICAS). */
  replicas?: number;
  now?: () => Date;
  /**
   * The service this bus belongs to: its sends, asks, answers and reads are then held to its grants in
   * `shared/catalogue/access.ts`, and its replies arrive under an inbox prefix of its own. Left out (tests,
   * tools), nothing is checked.
   */
  service?: ServiceName;
  /** PEM file of the CA that signed the NATS servers' certificates (NATS_TLS_CA), for TLS. */
  tlsCa?: string | undefined;
}

export interface PublishOptions extends Lineage {
  /** De-duplication key: a publish retried with the same id is stored once. Defaults to the envelope id. */
  msgId?: string;
}

export interface RpcOptions extends Lineage {
  timeoutMs?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** How `serve` starts a successful answer (`JSON.stringify({ ok: true, data })`); `requestJson` relies on it. */
const okPrefix = [...enc.encode('{"ok":true,"data":')];

export function encodeEnvelope(env: Envelope): Uint8Array {
  // Buffer.from is cheaper than TextEncoder for small strings (pooled allocation).
  return Buffer.from(JSON.stringify(env), 'utf8');
}

/** Parses and checks an envelope; throws ValidationError naming what is wrong. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (cause) {
    throw new ValidationError('message is not JSON', { cause, field: 'envelope' });
  }
  const fast = wellFormedEnvelope(raw);
  if (fast) return fast;
  const r = envelopeSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ValidationError(`malformed envelope: ${i?.path.join('.') || 'envelope'}: ${i?.message}`, {
      field: i?.path.join('.') || 'envelope',
    });
  }
  return r.data as Envelope;
}

const shortString = (v: unknown, min: number): v is string =>
  typeof v === 'string' && v.length >= min && v.length <= 200;

/**
 * The hot path of envelope checking, done by hand: accepts only what `envelopeSchema` accepts (the
 * time must be exactly what `Date#toISOString` writes) and returns null for everything else, which
 * then goes through the schema for its verdict and error message.
 */
function wellFormedEnvelope(raw: unknown): Envelope | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const e = raw as Record<string, unknown>;
  const { id, type, time, source, correlationId, causationId } = e;
  if (!shortString(id, 1) || !shortString(type, 1) || !shortString(source, 1)) return null;
  if (!shortString(correlationId, 1) || !(causationId === null || shortString(causationId, 0))) return null;
  if (typeof time !== 'string' || time.length !== 24) return null;
  const ms = Date.parse(time);
  if (Number.isNaN(ms) || new Date(ms).toISOString() !== time) return null;
  // The schema wants `data` present (any value). Keys beyond the envelope's are dropped, as the
  // schema does; without any, the parsed object itself is kept.
  if (!('data' in e) || e.data === undefined) return null;
  let keys = 0;
  for (const _ in e) keys++;
  if (keys === 7) return e as unknown as Envelope;
  return { id, type, time, source, correlationId, causationId, data: e.data };
}

/** Validates a payload against its schema; the error names the first offending field. */
export function parsePayload<S extends z.ZodType>(schema: S, data: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const i = r.error.issues[0];
  const field = i?.path.join('.') || 'data';
  throw new ValidationError(`invalid ${what}: ${field}: ${i?.message}`, { field });
}

/**
 * nats.js ignores credentials in a URL, so `nats://user:password@host:4222` (or `nats://token@host`)
 * is split into the server and its credentials; `shown` is the URL without the secret, for messages.
 */
function natsServer(url: string): {
  servers: string;
  auth: { user?: string; pass?: string; token?: string };
  shown: string;
} {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { servers: url, auth: {}, shown: url };
  }
  if (!u.username) return { servers: url, auth: {}, shown: url };
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  const servers = `${u.protocol}//${u.host}`;
  const shown = `${u.protocol}//${user}${pass ? ':***' : ''}@${u.host}`;
  return { servers, auth: pass ? { user, pass } : { token: user }, shown };
}

interface NatsLink {
  state: 'connected' | 'disconnected';
  since: number;
  disconnects: number;
  reconnects: number;
}

/**
 * The one door to NATS. Publishes events and commands as envelopes, answers and asks RPCs.
 * Consuming lives in consume.ts.
 */
export class Bus {
  readonly prefix: string;
  readonly source: string;
  readonly log: Logger;
  private readonly now: () => Date;
  private readonly subs = new Set<Subscription>();
  private readonly publisher: JsPublisher;
  /** Null when the bus belongs to no service (tests, tools). */
  readonly guard: AccessGuard | null;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    opts: BusOptions,
    private readonly link: NatsLink,
  ) {
    this.prefix = opts.prefix;
    this.source = opts.source;
    this.log = opts.log;
    this.now = opts.now ?? (() => new Date());
    this.guard = opts.service ? new AccessGuard(opts.service) : null;
    this.publisher = new JsPublisher(nc, opts.service ? inboxPrefixFor(opts.service) : undefined);
  }

  static async connect(opts: BusOptions): Promise<Bus> {
    let nc: NatsConnection;
    const { servers, auth, shown } = natsServer(opts.url);
    try {
      nc = await connect({
        servers,
        ...auth,
        name: opts.source,
        ...(opts.service ? { inboxPrefix: inboxPrefixFor(opts.service) } : {}),
        ...(opts.tlsCa ? { tls: { caFile: opts.tlsCa } } : {}),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        waitOnFirstConnect: false,
        timeout: 5000,
        noAsyncTraces: true,
      });
    } catch (cause) {
      throw new UnavailableError(`cannot reach NATS at ${shown}`, { cause });
    }
    const link: NatsLink = {
      state: 'connected',
      since: Date.now(),
      disconnects: 0,
      reconnects: 0,
    };
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type !== 'disconnect' && s.type !== 'reconnect') continue;
        link.state = s.type === 'disconnect' ? 'disconnected' : 'connected';
        link.since = Date.now();
        if (s.type === 'disconnect') link.disconnects++;
        else link.reconnects++;
        opts.log.warn({ nats: s.type, server: nc.getServer() }, 'nats connection status');
      }
    })();
    const jsm = await jetstreamManager(nc).catch((cause: unknown) => {
      void nc.close();
      throw new UnavailableError(`NATS at ${shown} has no JetStream (start nats-server with -js)`, {
        cause,
      });
    });
    const bus = new Bus(nc, jetstream(nc), jsm, opts, link);
    if (opts.streams) await applyStreams(jsm, opts.prefix, opts.streams, opts.replicas);
    return bus;
  }

  /** Which NATS server this connection is on and how it has fared: service detail, fault diagnostics. */
  natsLink(): {
    server: string;
    state: NatsLink['state'];
    forSeconds: number;
    disconnects: number;
    reconnects: number;
  } {
    const { since, ...rest } = this.link;
    return { ...rest, server: this.nc.getServer(), forSeconds: Math.round((Date.now() - since) / 100) / 10 };
  }

  subject(relative: string): string {
    return `${this.prefix}.${relative}`;
  }

  envelope<T>(type: string, data: T, lineage: Lineage = {}): Envelope<T> {
    const id = randomUUID();
    return {
      id,
      type,
      time: this.now().toISOString(),
      source: this.source,
      correlationId: lineage.correlationId ?? id,
      causationId: lineage.causationId ?? null,
      data,
    };
  }

  /** Publishes a fact or a command into its stream; resolves once JetStream has stored it. */
  async publish<S extends z.ZodType>(
    def: EventDef<S> | CommandDef<S>,
    data: z.input<S>,
    opts: PublishOptions = {},
  ): Promise<Envelope<z.infer<S>>> {
    this.guard?.send(def.subject);
    const payload = parsePayload(def.schema, data, `${def.type} payload`);
    const env = this.envelope(wireType(def), payload, opts);
    await this.publisher.publish(this.subject(def.subject), encodeEnvelope(env), opts.msgId ?? env.id);
    return env;
  }

  /** Publishes an already-built envelope (used by the outbox relay, which stores envelopes). */
  async publishEnvelope(subject: string, env: Envelope, msgId: string): Promise<{ duplicate: boolean }> {
    this.guard?.send(subject);
    const ack = await this.publisher.publish(this.subject(subject), encodeEnvelope(env), msgId);
    return { duplicate: ack.duplicate };
  }

  /** Asks one instance of the owning service; throws the named error it answered with. */
  async request<Q extends z.ZodType, R extends z.ZodType>(
    def: RpcDef<Q, R>,
    data: z.input<Q>,
    opts: RpcOptions = {},
  ): Promise<z.infer<R>> {
    return this.answerOf(def, await this.ask(def, data, opts));
  }

  /**
   * As `request`, but the answer comes back as its JSON text, as the owning service wrote it, without
   * being parsed here: for a caller that only passes it on (the gateway's REST routes answer it as it
   * is). The answering side checked it against `def.response` before sending it (`serve`); an answer
   * in any other form than `serve`'s goes through `request`'s checks and is written out again.
   */
  async requestJson<Q extends z.ZodType, R extends z.ZodType>(
    def: RpcDef<Q, R>,
    data: z.input<Q>,
    opts: RpcOptions = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    const reply = await this.ask(def, data, opts);
    const n = reply.byteLength;
    if (n > okPrefix.length && reply[n - 1] === 0x7d && okPrefix.every((b, i) => reply[i] === b))
      return new Uint8Array(reply.subarray(okPrefix.length, n - 1));
    return enc.encode(JSON.stringify(this.answerOf(def, reply)));
  }

  private async ask<Q extends z.ZodType, R extends z.ZodType>(
    def: RpcDef<Q, R>,
    data: z.input<Q>,
    opts: RpcOptions,
  ): Promise<Uint8Array> {
    this.guard?.ask(def.subject);
    const payload = parsePayload(def.request, data, `${def.type} request`);
    const env = this.envelope(wireType(def), payload, opts);
    try {
      const m = await this.nc.request(this.subject(def.subject), encodeEnvelope(env), {
        timeout: opts.timeoutMs ?? 5000,
      });
      return m.data;
    } catch (cause) {
      throw new UnavailableError(`${def.service} did not answer ${def.type}`, { cause });
    }
  }

  private answerOf<R extends z.ZodType>(def: RpcDef<z.ZodType, R>, reply: Uint8Array): z.infer<R> {
    const body = JSON.parse(dec.decode(reply)) as {
      ok: boolean;
      data?: unknown;
      error?: Parameters<typeof errorFromBody>[0];
    };
    if (!body.ok) throw errorFromBody(body.error ?? { code: 'internal', message: 'empty error reply' });
    return parsePayload(def.response, body.data, `${def.type} response`);
  }

  /** Answers an RPC; instances of one service share the work through a queue group. */
  serve<Q extends z.ZodType, R extends z.ZodType>(
    def: RpcDef<Q, R>,
    handler: (req: z.infer<Q>, env: Envelope<z.infer<Q>>) => Promise<z.input<R>>,
  ): Subscription {
    this.guard?.answer(def.subject);
    const sub = this.nc.subscribe(this.subject(def.subject), {
      queue: def.service,
      callback: (err, msg) => {
        if (err) {
          this.log.error({ err, subject: def.subject }, 'rpc subscription failed');
          return;
        }
        void (async () => {
          let out: { ok: true; data: unknown } | { ok: false; error: ReturnType<typeof toErrorBody> };
          try {
            const env = decodeEnvelope(msg.data);
            const req = parsePayload(def.request, env.data, `${def.type} request`);
            const res = await handler(req, { ...env, data: req });
            // `ok` first, then `data`: requestJson takes the answer's text from after this prefix.
            out = { ok: true, data: parsePayload(def.response, res, `${def.type} response`) };
          } catch (e) {
            // A database that is away is the caller's 503 (try again), not an internal error.
            const err =
              !(e instanceof CrowbarError) && isDatabaseUnavailable(e)
                ? new UnavailableError(`${def.service} cannot reach its database; try again`, { cause: e })
                : e;
            if (!(err instanceof CrowbarError) || !err.permanent)
              this.log.error({ err, rpc: def.type }, 'rpc handler failed');
            out = { ok: false, error: toErrorBody(err) };
          }
          if (msg.reply) msg.respond(enc.encode(JSON.stringify(out)));
        })();
      },
    });
    this.subs.add(sub);
    return sub;
  }

  /** Drains subscriptions and closes the connection; pending publishes finish first. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.publisher.settled();
    this.publisher.close();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
