import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../../infra/nats.js';
import { type NatsUser, natsAuthorization, natsCredentials, natsUrlFor } from '../../infra/nats-auth.js';
import { pickPort } from '../../infra/ports.js';
import { gatewayService } from '../../services/gateway/service.js';
import type { Bus } from '../../shared/bus/bus.js';
import { streamName } from '../../shared/bus/streams.js';
import { inventoryEvents, type ServiceName } from '../../shared/catalogue/index.js';
import { type HostedService, hostService } from '../../shared/service/host.js';
import { runCrowbar } from './cli.js';
import { connectTestBus, createTestEnv, type TestEnv } from './env.js';
import type { Run } from './process.js';
import { type Stack, startStack, testAdminToken } from './stack.js';
import { WebhookReceiver } from './webhook-receiver.js';

/** The gateway's webhook settings a test may set; the ones it leaves out keep the gateway's defaults. */
export type WebhookSettings = Partial<
  Record<
    | 'CROWBAR_WEBHOOK_ATTEMPTS'
    | 'CROWBAR_WEBHOOK_BACKOFF_MS'
    | 'CROWBAR_WEBHOOK_BACKOFF_MAX_MS'
    | 'CROWBAR_WEBHOOK_TIMEOUT_MS'
    | 'CROWBAR_WEBHOOK_POLL_MS'
    | 'CROWBAR_WEBHOOK_LOG_KEEP',
    string
  >
>;

/**
 * The settings of the delivery log's and redelivery's tests: dead-lettered after 4 attempts, backoff from
 * 250 ms (so a `failed` row is there long enough to be seen), each log keeps 20 events.
 */
export const deliveryLogSettings = {
  CROWBAR_WEBHOOK_ATTEMPTS: '4',
  CROWBAR_WEBHOOK_BACKOFF_MS: '250',
  CROWBAR_WEBHOOK_BACKOFF_MAX_MS: '1000',
  CROWBAR_WEBHOOK_TIMEOUT_MS: '2000',
  CROWBAR_WEBHOOK_POLL_MS: '200',
  CROWBAR_WEBHOOK_LOG_KEEP: '20',
} satisfies WebhookSettings;

export interface WebhookStack {
  t: TestEnv;
  stack: Stack;
  /** A bus client as the NATS user `admin`. */
  bus: Bus;
  /** The file's scratch directory: the nats-server's files (`nats/`) and the CLI's home. */
  dir: string;
  /** The gateway's URL now (a restarted gateway listens on another port). */
  api(): string;
  /** fetch against the gateway (the admin token unless told); JSON in and out. */
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  /** A receiver on 127.0.0.1, closed in afterAll. */
  receiver(): Promise<WebhookReceiver>;
  /** Registers a webhook (by default for node.changed); answers its id and the secret, shown once. */
  createHook(url: string, filter?: string): Promise<{ id: number; secret: string }>;
  /** Publishes a node.changed event that says `reason`, as inventory's outbox would; answers its id. */
  publish(reason: string, node?: { id?: number; name?: string }): Promise<{ id: string }>;
  /**
   * Publishes as `publish` does and answers the event's stream sequence. Only for a stack in which
   * nothing else publishes node.changed (no inventory): it reads the last one back.
   */
  publishSeq(reason: string, node?: { id?: number; name?: string }): Promise<number>;
  /** The reasons of the deliveries `r` accepted that start with `tag`, in arrival order. */
  reasons(r: WebhookReceiver, tag: string): string[];
  /** A page of a webhook's delivery log (`query` as the API takes it), expecting a 200. */
  deliveryLog(hook: number, query?: string): Promise<{ deliveries: any[]; next: string | null }>;
  /** The delivery log's row for one event of a webhook, if it has one. */
  deliveryRow(hook: number, seq: number): Promise<any>;
  /** Another gateway on the same database and bus (a second replica), stopped in afterAll. */
  extraGateway(): Promise<HostedService>;
  /** Runs the `crowbar` CLI against the gateway with the admin token. */
  run(args: string[]): Promise<Run>;
  /** Runs the CLI, expects it to succeed silently, and answers its JSON output. */
  cli(args: string[]): Promise<any>;
  /** The publish and subscription violations in the nats-server's log (none expected). */
  natsViolations(): string[];
}

/** The reason a node.changed delivery's body says ('' for another event). */
export const reasonOf = (body: string) =>
  (JSON.parse(body) as { data: { reason?: string } }).data.reason ?? '';

/**
 * For a webhook test file: the named services (the gateway by default) in this process on a
 * nats-server of the file's own that gives each service the NATS user `npm start` gives it
 * (permissions from shared/catalogue/access.ts), so the webhooks' consumers run with the gateway's real
 * permissions. The gateway gets exactly the webhook settings given: any CROWBAR_WEBHOOK_* in the file's
 * environment is dropped first. Set up in beforeAll and torn down in afterAll, like `useStack`; the
 * fields are there once the tests run.
 */
export function useWebhookStack(
  settings: WebhookSettings = {},
  services: ServiceName[] = ['gateway'],
): WebhookStack {
  const receivers: WebhookReceiver[] = [];
  const extraGateways: HostedService[] = [];
  let nats: NatsServerHandle | undefined;
  let natsUrl: (user: NatsUser) => string;

  const api = () => `http://127.0.0.1:${h.stack.services.get('gateway')!.detail().port}/api/v2`;
  const call: WebhookStack['call'] = async (method, path, body, token = testAdminToken) => {
    const r = await fetch(`${api()}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const publish: WebhookStack['publish'] = (reason, node = { id: 7 }) =>
    h.bus.publish(inventoryEvents.nodeChanged, {
      node: { ...inventoryEvents.nodeChanged.example.node, ...node },
      changed: ['alive'],
      reason,
    });
  const deliveryLog: WebhookStack['deliveryLog'] = async (hook, query = '') => {
    const r = await call('GET', `/webhooks/${hook}/deliveries${query}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { deliveries: any[]; next: string | null };
  };
  const run = (args: string[]) =>
    runCrowbar(args, {
      HOME: h.dir,
      CROWBAR_CONFIG: join(h.dir, 'cli.json'),
      CROWBAR_ENDPOINT: api().replace(/\/api\/v2$/, ''),
      CROWBAR_KEY: testAdminToken,
    });

  // The clients are filled in by beforeAll.
  const tools: Omit<WebhookStack, 't' | 'stack' | 'bus' | 'dir'> = {
    api,
    call,
    publish,
    run,
    deliveryLog,
    deliveryRow: async (hook, seq) =>
      (await deliveryLog(hook, '?limit=1000')).deliveries.find((d) => d.seq === seq),
    async receiver() {
      const r = await WebhookReceiver.start();
      receivers.push(r);
      return r;
    },
    async createHook(url, filter = 'node.changed') {
      const r = await call('POST', '/webhooks', { url, filter });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      return r.body;
    },
    async publishSeq(reason, node) {
      await publish(reason, node);
      // Published one at a time, so the last node.changed in the stream is this one.
      const m = await h.bus.jsm.streams.getMessage(streamName(h.t.prefix, 'EVENTS'), {
        last_by_subj: `${h.t.prefix}.evt.node.changed.v1`,
      });
      expect(reasonOf(m!.string())).toBe(reason);
      return m!.seq;
    },
    reasons: (r, tag) =>
      r
        .accepted()
        .map((x) => reasonOf(x.body))
        .filter((x) => x.startsWith(tag)),
    async extraGateway() {
      const g = await hostService(gatewayService, {
        env: {
          ...h.t.env,
          ...settings,
          NATS_URL: natsUrl('gateway'),
          CROWBAR_HTTP_HOST: '127.0.0.1',
          CROWBAR_HTTP_PORT: '0',
          CROWBAR_ADMIN_TOKEN: testAdminToken,
        },
      });
      extraGateways.push(g);
      return g;
    },
    async cli(args) {
      const r = await run(args);
      expect([r.code, r.stderr]).toEqual([0, '']);
      return JSON.parse(r.stdout);
    },
    natsViolations: () =>
      readFileSync(join(h.dir, 'nats', 'nats-server.log'), 'utf8').match(
        /(Publish|Subscription) Violation[^\n]*/g,
      ) ?? [],
  };
  const h = tools as WebhookStack;

  beforeAll(async () => {
    h.dir = mkdtempSync(join(tmpdir(), 'crowbar-webhooks-'));
    h.t = await createTestEnv();
    const creds = natsCredentials(join(h.dir, 'credentials.json'));
    // A port the kernel picks: webhook files running at once never race for the same one.
    nats = await startNatsServer({
      dir: join(h.dir, 'nats'),
      port: await pickPort(0),
      log: () => undefined,
      authorization: natsAuthorization(creds, h.t.prefix),
    });
    const url = nats.url;
    natsUrl = (user) => natsUrlFor(url, user, creds);
    h.t.env.NATS_URL = natsUrl('admin');
    for (const k of Object.keys(h.t.env)) if (k.startsWith('CROWBAR_WEBHOOK_')) delete h.t.env[k];
    h.stack = await startStack(h.t, services, settings, (name) => ({ NATS_URL: natsUrl(name) }));
    h.bus = await connectTestBus({ ...h.t, natsUrl: natsUrl('admin') });
  }, 120_000);

  afterAll(async () => {
    for (const g of extraGateways) await g.stop();
    await h.stack?.stop();
    await h.bus?.close();
    for (const r of receivers) await r.close();
    await nats?.stop();
    await h.t?.cleanup().catch(() => undefined);
    if (h.dir) rmSync(h.dir, { recursive: true, force: true });
  });
  return h;
}
