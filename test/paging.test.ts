import { describe, expect, it } from 'vitest';
import { inventoryAnnealRpcs } from '../shared/catalogue/index.js';
import { runCrowbar } from './helpers/cli.js';
import { op, until } from './helpers/inventory.js';
import { testAdminToken, useStack } from './helpers/stack.js';

/**
 * List paging (issue 17) through the gateway against a real inventory: `limit` and `cursor`, `next` on
 * every page but the last, keyset order that holds while rows are added, a default page of 500, 422s
 * naming `limit` or `cursor`, runs newest first, and the CLI following `next` to show every node.
 */
const h = useStack(['inventory', 'annealer', 'jig-runner', 'gateway'], { CROWBAR_ANNEAL_PASS_MS: '200' });

type Page = { status: number; body: any };
const get = (path: string): Promise<Page> => h.stack.call('GET', path);
/** Every page of a list from `path` (which already has a query), asking `limit` at a time. */
async function walk(path: string, key: string, limit: number) {
  const pages: any[][] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const r: Page = await get(
      `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body[key].length).toBeLessThanOrEqual(limit);
    pages.push(r.body[key]);
    cursor = r.body.next;
    if (cursor !== null) expect(r.body[key]).toHaveLength(limit);
  } while (cursor !== null);
  return pages;
}
const ids = (rows: { id: number }[]) => rows.map((r) => r.id);

describe('list paging', () => {
  it('pages nodes by id: first page, next, last page without next', async () => {
    for (let i = 0; i < 23; i++)
      expect((await h.stack.call('POST', '/nodes', { name: `p${i}.paging.crowbar.test` })).status).toBe(201);
    const all = (await get('/nodes')).body;
    expect(all.next).toBeNull();
    // The 23 and the system deployment's phantom node.
    const n = all.nodes.length as number;
    expect(n).toBe(24);
    const pages = await walk('/nodes', 'nodes', 10);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 4]);
    expect(pages.flat().map((x) => x.id)).toEqual(ids(all.nodes));
    // A page that ends exactly at the last row has no next.
    expect((await walk('/nodes', 'nodes', n)).map((p) => p.length)).toEqual([n]);
    expect((await walk('/nodes', 'nodes', 12)).map((p) => p.length)).toEqual([12, 12]);
  });

  it('keeps pages stable while nodes are added between them', async () => {
    const first = (await get('/nodes?limit=5')).body;
    const before = ids((await get('/nodes')).body.nodes);
    for (let i = 0; i < 4; i++)
      await h.stack.call('POST', '/nodes', { name: `late${i}.paging.crowbar.test` });
    const rest: number[] = [];
    let cursor: string | null = first.next;
    while (cursor !== null) {
      const r: Page = await get(`/nodes?limit=5&cursor=${cursor}`);
      rest.push(...ids(r.body.nodes));
      cursor = r.body.next;
    }
    const seen = [...ids(first.nodes), ...rest];
    // Nothing seen twice, nothing that was there skipped, the new ones at the end.
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(0, before.length)).toEqual(before);
    expect(seen).toHaveLength(before.length + 4);
  });

  it('pages noderoles in cohort order, for all of them, a node or a deployment', async () => {
    expect((await h.stack.call('POST', '/deployments', { name: 'paged' })).status).toBe(201);
    for (let i = 0; i < 4; i++) {
      const n = await op(h.bus, 'node.create', { name: `r${i}.paging.crowbar.test`, deployment: 'paged' });
      await op(h.bus, 'noderole.create', { node: n.id, role: 'test-top' });
    }
    const all = (await get('/deployments/paged/node_roles')).body.noderoles as {
      id: number;
      cohort: number;
    }[];
    expect(all).toHaveLength(12);
    const before = (a: { id: number; cohort: number }, b: { id: number; cohort: number }) =>
      a.cohort < b.cohort || (a.cohort === b.cohort && a.id < b.id);
    expect(all.every((r, i) => i === 0 || before(all[i - 1]!, r))).toBe(true);
    expect(new Set(all.map((r) => r.cohort)).size).toBe(3);
    for (const path of ['/deployments/paged/node_roles', '/node_roles?deployment=paged']) {
      const pages = await walk(path, 'noderoles', 5);
      expect(
        pages.map((p) => p.length),
        path,
      ).toEqual([5, 5, 2]);
      expect(ids(pages.flat()), path).toEqual(ids(all));
    }
    const node = (await walk('/nodes/r0.paging.crowbar.test/node_roles', 'noderoles', 2)).flat();
    expect(node.map((r) => r.role)).toEqual(['test-base', 'test-middle', 'test-top']);
  });

  it('pages runs newest first', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 6; i++) {
      const n = await op(h.bus, 'node.create', { name: `run${i}.paging.crowbar.test`, alive: true });
      await op(h.bus, 'noderole.create', { node: n.id, role: 'test-top' });
      await op(h.bus, 'node.commit', { node: n.id });
    }
    await until(
      'anneal finished',
      async () => (await h.bus.request(inventoryAnnealRpcs.status, {})).status === 'finished',
      40_000,
    );
    const all = (await get('/runs?all=true&limit=1000')).body;
    expect(all.next).toBeNull();
    expect(all.runs.length).toBeGreaterThanOrEqual(18);
    const pages = await walk('/runs?all=true', 'runs', 5);
    expect(ids(pages.flat())).toEqual(ids(all.runs));
    expect(ids(all.runs)).toEqual([...ids(all.runs)].sort((a, b) => b - a));
    expect((await get('/runs')).body).toMatchObject({ runs: [], next: null });
  });

  it('refuses a bad limit or cursor with a 422 naming it', async () => {
    for (const [path, field] of [
      ['/nodes?limit=0', 'limit'],
      ['/nodes?limit=1001', 'limit'],
      ['/nodes?limit=ten', 'limit'],
      ['/nodes?limit=-5', 'limit'],
      ['/nodes?cursor=abc', 'cursor'],
      ['/nodes?cursor=3.4', 'cursor'],
      ['/node_roles?cursor=7', 'cursor'],
      ['/nodes/1/node_roles?limit=2000', 'limit'],
      ['/deployments/paged/node_roles?cursor=x.y', 'cursor'],
      ['/runs?limit=0', 'limit'],
      ['/runs?cursor=abc', 'cursor'],
    ] as const) {
      const r = await get(path);
      expect(r.status, path).toBe(422);
      expect(r.body.field, path).toBe(field);
      expect(r.body.message, path).toContain(field);
    }
  });

  it('answers at most 500 nodes without a limit, and the CLI follows next to list them all', {
    timeout: 120_000,
  }, async () => {
    const have = (await get('/nodes?limit=1000')).body.nodes.length as number;
    const want = 510 - have;
    for (let i = 0; i < want; i += 30)
      await Promise.all(
        Array.from({ length: Math.min(30, want - i) }, (_, j) =>
          op(h.bus, 'node.create', { name: `bulk${i + j}.paging.crowbar.test` }),
        ),
      );
    const first = (await get('/nodes')).body;
    expect(first.nodes).toHaveLength(500);
    expect(first.next).toBe(String(first.nodes.at(-1).id));
    expect((await get(`/nodes?cursor=${first.next}`)).body).toMatchObject({ next: null });
    const listed = JSON.parse(await crowbar(['nodes', 'list', '--format', 'json'])) as { nodes: unknown[] };
    expect(listed.nodes).toHaveLength(510);
    expect(listed).toMatchObject({ next: null });
  });
});

async function crowbar(args: string[]): Promise<string> {
  const r = await runCrowbar(args, {
    CROWBAR_ENDPOINT: h.stack.api.replace(/\/api\/v2$/, ''),
    CROWBAR_KEY: testAdminToken,
    CROWBAR_CONFIG: '/nonexistent/crowbar.json',
  });
  expect([r.code, r.stderr]).toEqual([0, '']);
  return r.stdout;
}
