import { request } from 'node:http';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * The node-facing routes take no operator token, so anything on the admin network can call them: each
 * source address gets a token bucket (here 1/s, bursts of 5). Past it: 429 with Retry-After, and no
 * service is asked; another address and the operator routes are not held back.
 */
let t: TestEnv;
let stack: Stack;
let nc: NatsConnection;
const asked: string[] = [];

beforeAll(async () => {
  t = await createTestEnv();
  stack = await startStack(t, ['inventory', 'gateway'], {
    CROWBAR_NODE_API_RATE: '1',
    CROWBAR_NODE_API_BURST: '5',
  });
  nc = await connect({ servers: t.natsUrl });
  nc.subscribe(`${t.prefix}.rpc.>`, {
    callback: (_e, m) => {
      asked.push(m.subject);
    },
  });
  await nc.flush();
});

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
  await t?.cleanup();
});

/** A node report from `from` (a loopback address of this machine). */
function report(from: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  const u = new URL(`${stack.api}/node-api/nodes/1/alive`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        localAddress: from,
        headers: { authorization: 'Bearer not-the-credential', 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string, body }),
        );
      },
    );
    req.on('error', reject);
    req.end('{"alive":true}');
  });
}

describe('node API rate limit per source address', () => {
  it('answers 429 past the burst without asking any service; other sources and operators go on', async () => {
    const answers: { status: number; retryAfter: string | undefined; body: string }[] = [];
    // Bounded: a burst of 5 at 1/s is spent well before 20 quick requests.
    while (answers.length < 20 && !answers.some((a) => a.status === 429))
      answers.push(await report('127.0.0.1'));
    expect(answers.slice(0, 5).map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    const limited = answers.at(-1)!;
    expect(limited.status).toBe(429);
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(limited.body)).toMatchObject({ code: 'rate_limited' });
    expect(JSON.parse(limited.body).message).toMatch(/at most 1 per second/);
    // Each answered report asked inventory once; the refused one asked nothing.
    await nc.flush();
    expect(asked.length).toBe(answers.filter((a) => a.status !== 429).length);
    // Another machine is not held back, nor is the operator.
    expect((await report('127.0.0.2')).status).toBe(401);
    expect((await stack.call('GET', '/nodes')).status).toBe(200);
  });
});
