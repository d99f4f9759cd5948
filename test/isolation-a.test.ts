import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Bus, streamName } from '../shared/bus/index.js';
import { diag, streams } from '../shared/catalogue/index.js';
import { createLogger } from '../shared/log.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';

// This file and its twin (isolation-b) write the same things; each must see only its own.
let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => t?.cleanup());

it('starts from an empty database and empty streams, whatever ran before', async () => {
  const c = new pg.Client({ connectionString: t.databaseUrl });
  await c.connect();
  const before = await c.query(
    "select count(*)::int as n from information_schema.tables where table_name = 'marker'",
  );
  expect(before.rows[0].n).toBe(0);
  await c.query('create table marker (who text)');
  await c.query("insert into marker values ('a')");
  await c.end();

  const log = createLogger('t', { level: 'silent' });
  const bus = await Bus.connect({ url: t.natsUrl, prefix: t.prefix, source: 'iso-a', log, streams });
  expect((await bus.jsm.streams.info(streamName(t.prefix, 'EVENTS'))).state.messages).toBe(0);
  await bus.publish(diag.ponged, { seq: 1, by: 'a' });
  expect((await bus.jsm.streams.info(streamName(t.prefix, 'EVENTS'))).state.messages).toBe(1);
  await bus.close();
});
