import { type Grant, type ServiceAccess, serviceAccess } from '../catalogue/access.js';
import { streams as declaredStreams, type ServiceName, system } from '../catalogue/index.js';
import { streamName } from './streams.js';
import { subjectMatches } from './subjects.js';

/**
 * A service's bus permissions (`shared/catalogue/access.ts`), in two forms: a guard the service's own
 * `Bus` checks before every send, ask, answer and read, and the nats-server permissions of the
 * service's user. Both come from the same function, so what the tests allow is what production allows.
 */

const grantSubject = (g: Grant) => (typeof g === 'string' ? g : g.subject);

/** Where a service's RPC replies and JetStream acks arrive: a prefix no other user may subscribe to. */
export const inboxPrefixFor = (name: string) => `_INBOX_${name}`;

/** Relative subjects a service may publish to, ask and answer, and the streams it reads. */
export function grantsOf(name: ServiceName, access: ServiceAccess = serviceAccess[name]) {
  const reads = [...access.reads];
  const sends = [
    system.serviceStarted.subject,
    system.serviceStopped.subject,
    ...access.sends.map(grantSubject),
  ];
  if (reads.length)
    sends.push(system.messageDeadLettered.subject, ...reads.map((s) => `dead.${s.toLowerCase()}.>`));
  return {
    sends,
    asks: access.asks.map(grantSubject),
    answers: [`rpc.${name}.>`],
    reads,
  };
}

/** Streams whose subjects a service sends to or reads from: the ones it may create and update. */
export function streamsOf(name: ServiceName): string[] {
  const g = grantsOf(name);
  return declaredStreams
    .filter(
      (s) =>
        g.reads.includes(s.name) ||
        s.subjects.some((ss) => g.sends.some((p) => subjectMatches(ss, p) || subjectMatches(p, ss))),
    )
    .map((s) => s.name);
}

/** Every refusal the guards made in this process (the test set-up fails a file that has any). */
export const accessViolations: string[] = [];

export class AccessGuard {
  private readonly g: ReturnType<typeof grantsOf>;
  constructor(readonly name: ServiceName) {
    this.g = grantsOf(name);
  }

  private check(verb: string, list: string[], subject: string) {
    if (list.some((p) => subjectMatches(p, subject))) return;
    const msg = `${this.name} may not ${verb} ${subject}: it is not declared in shared/catalogue/access.ts`;
    accessViolations.push(msg);
    throw new Error(msg);
  }
  send(subject: string) {
    this.check('publish', this.g.sends, subject);
  }
  ask(subject: string) {
    this.check('ask', this.g.asks, subject);
  }
  answer(subject: string) {
    this.check('answer', this.g.answers, subject);
  }
  read(stream: string) {
    this.check('read the stream', this.g.reads, stream);
  }
}

export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
  allow_responses: boolean;
}

/** The nats-server permissions of a service's user, for the installation prefix. */
export function natsPermissions(name: ServiceName, prefix: string): NatsPermissions {
  const g = grantsOf(name);
  const p = (s: string) => `${prefix}.${s}`;
  const js = (s: string) => `$JS.API.${s}`;
  const own = streamsOf(name).map((s) => streamName(prefix, s));
  const read = g.reads.map((s) => streamName(prefix, s));
  return {
    publish: {
      allow: [
        ...g.sends.map(p),
        ...g.asks.map(p),
        js('INFO'),
        ...own.flatMap((s) => [js(`STREAM.INFO.${s}`), js(`STREAM.CREATE.${s}`), js(`STREAM.UPDATE.${s}`)]),
        // A stream it reads: its state too (consume.ts compares it with the consumer's, stranded.ts).
        ...read.flatMap((s) => [
          js(`STREAM.INFO.${s}`),
          js(`CONSUMER.*.${s}.>`),
          js(`CONSUMER.*.*.${s}.>`),
          `$JS.ACK.${s}.>`,
        ]),
      ],
    },
    subscribe: { allow: [`${inboxPrefixFor(name)}.>`, ...g.answers.map(p)] },
    allow_responses: true,
  };
}

/**
 * The read-only user for external tools: it follows the event stream (core subscriptions or JetStream
 * consumers of EVENTS) and sees nothing else, RPC replies included (services' replies arrive under
 * their own inbox prefixes, which `_INBOX.>` does not match).
 */
export function toolsPermissions(prefix: string): NatsPermissions {
  const events = streamName(prefix, 'EVENTS');
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        `$JS.API.STREAM.INFO.${events}`,
        `$JS.API.CONSUMER.*.${events}.>`,
        `$JS.API.CONSUMER.*.*.${events}.>`,
        `$JS.ACK.${events}.>`,
      ],
    },
    subscribe: { allow: [`${prefix}.evt.>`, '_INBOX.>'] },
    allow_responses: false,
  };
}
