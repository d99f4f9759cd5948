import { afterAll, beforeAll, expect, it } from 'vitest';
import { inventoryAnnealRpcs } from '../shared/catalogue/index.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { op, until } from './helpers/inventory.js';
import { type Stack, startStack } from './helpers/stack.js';

let t: TestEnv;
let s: Stack;
beforeAll(async () => {
  t = await createTestEnv();
  s = await startStack(t, ['inventory', 'annealer', 'jig-runner'], {
    CROWBAR_ANNEAL_PASS_MS: '200',
    LOG_LEVEL: process.env.TEST_LOG ?? 'silent',
  });
});
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
});

it('anneals a small noop graph on one node to active', async () => {
  const b = await connectTestBus(t);
  const n = await op(b, 'node.create', { name: 'n1.lab.example.com', alive: true });
  const nr = await op(b, 'noderole.create', { node: n.id, role: 'test-top' });
  expect(nr.state).toBe('proposed');
  await op(b, 'node.commit', { node: n.id });
  await until(
    'anneal finished',
    async () => (await b.request(inventoryAnnealRpcs.status, {})).status === 'finished',
  );
  const list = await op(b, 'noderole.list', { node: n.id });
  expect(list.noderoles.map((x: any) => [x.role, x.state])).toEqual([
    ['test-base', 'active'],
    ['test-middle', 'active'],
    ['test-top', 'active'],
  ]);
  await b.close();
});
