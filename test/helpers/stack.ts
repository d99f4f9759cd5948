import { afterAll, beforeAll } from 'vitest';
import { allServices } from '../../infra/services.js';
import { coreBarclampDir, testBarclampDir } from '../../services/inventory/service.js';
import type { Bus } from '../../shared/bus/bus.js';
import type { ServiceName } from '../../shared/catalogue/index.js';
import { type HostedService, hostService } from '../../shared/service/host.js';
import { connectTestBus, createTestEnv, type TestEnv } from './env.js';

export const testAdminToken = 'test-admin-token-0123456789';
export const testReadOnlyToken = 'test-readonly-token-0123456789';

export interface Stack {
  services: Map<ServiceName, HostedService>;
  /** Base URL of the gateway (`http://127.0.0.1:<port>/api/v2`) when it is part of the stack. */
  api: string;
  /** fetch against the gateway with the admin token; JSON in and out. */
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
  /** Stops one service of the stack (a crash or an outage in a test). */
  stopService(name: ServiceName): Promise<void>;
  /** Starts a stopped service again with the stack's environment. */
  startService(name: ServiceName): Promise<void>;
}

/**
 * Runs the named services in this process against the test file's database and bus prefix, the same way
 * the launcher's --single mode does. Stop it in afterAll.
 */
export async function startStack(
  t: TestEnv,
  names: ServiceName[],
  extraEnv: Record<string, string> = {},
  /** Environment one service gets on top of the rest (e.g. its own NATS credentials). */
  envOf: (name: ServiceName) => Record<string, string> = () => ({}),
): Promise<Stack> {
  const env = {
    ...t.env,
    // Tests create the nodes they need; the first-start admin node is tested on its own.
    CROWBAR_ADMIN_NODE: 'false',
    CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
    CROWBAR_HTTP_PORT: '0',
    CROWBAR_HTTP_HOST: '127.0.0.1',
    CROWBAR_ADMIN_TOKEN: testAdminToken,
    CROWBAR_READONLY_TOKEN: testReadOnlyToken,
    ...extraEnv,
  };
  const services = new Map<ServiceName, HostedService>();
  const stop = async () => {
    for (const [name, h] of [...services.entries()].reverse()) {
      // A slow stop is named on the test's output (a hook that runs out of time says only that it did).
      const slow = setTimeout(() => {
        process.stdout.write(`[stack] ${name} still stopping after 10 s: ${JSON.stringify(h.detail())}\n`);
      }, 10_000);
      await h.stop('test done').finally(() => clearTimeout(slow));
    }
  };
  try {
    for (const def of allServices.filter((d) => names.includes(d.name)))
      services.set(def.name, await hostService(def, { env: { ...env, ...envOf(def.name) } }));
  } catch (err) {
    await stop();
    throw err;
  }
  const port = services.get('gateway')?.detail().port;
  const api = `http://127.0.0.1:${port}/api/v2`;
  return {
    services,
    api,
    stop,
    async stopService(name) {
      await services.get(name)?.stop('stopped by the test');
      services.delete(name);
    },
    async startService(name) {
      const def = allServices.find((d) => d.name === name);
      if (!def || services.has(name)) throw new Error(`${name} is not a stopped service of this stack`);
      services.set(name, await hostService(def, { env: { ...env, ...envOf(name) } }));
    },
    async call(method, path, body, token = testAdminToken) {
      const r = await fetch(`${api}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON; keep the text
      }
      return { status: r.status, body: parsed };
    },
  };
}

/**
 * For a test file: its own environment, the named services in this process and a bus client, set up in
 * beforeAll and torn down in afterAll. The fields are there once the tests run.
 */
export function useStack(
  names: ServiceName[],
  extraEnv: Record<string, string> = {},
): { t: TestEnv; stack: Stack; bus: Bus } {
  const h = {} as { t: TestEnv; stack: Stack; bus: Bus };
  beforeAll(async () => {
    h.t = await createTestEnv();
    h.stack = await startStack(h.t, names, { LOG_LEVEL: process.env.TEST_LOG ?? 'silent', ...extraEnv });
    h.bus = await connectTestBus(h.t);
  });
  afterAll(async () => {
    await h.bus?.close();
    await h.stack?.stop();
    await h.t?.cleanup();
  });
  return h;
}
