/**
 * `npm run bench -- ui [--nodes 1000] [--roles 10] [--loads 5] [--changes 10]`
 *
 * The web UI in Debian's Chromium against the real inventory, annealer, jig-runner and gateway, with
 * N nodes × a chain of R noop roles (10,000 noderoles by default), annealed to ACTIVE first:
 * - `first_render_ms`: from navigation to the nodes page showing its first 50 rows with their states
 *   (the page's own clock, `performance.now()`, which starts at navigation), median of `--loads` loads
 *   (the first one with a cold cache is printed too);
 * - `update_ms`: from a committed change of a node (`PUT /nodes/:id {available}`; the `node.changed`
 *   event's time, which inventory stamps in the transaction that commits it) to the nodes page showing
 *   it (a MutationObserver in the page), median of `--changes` changes; no reload, no polling.
 * Goals: < 1500 and < 1000. Ends with one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureDebianProgram } from '../infra/packages.js';
import { allServices } from '../infra/services.js';
import { ensureUiBuild } from '../infra/ui-build.mjs';
import { coreBarclampDir, testBarclampDir } from '../services/inventory/service.js';
import {
  type InventoryOp,
  type InventoryOpRequest,
  inventoryAnnealRpcs,
  inventoryOpRpcs,
} from '../shared/catalogue/index.js';
import { type HostedService, hostService } from '../shared/service/host.js';
import { benchBus, benchCleanups, benchEnvironment } from '../test/helpers/bench-env.js';
import { launchBrowser } from '../test/helpers/browser.js';

const { values: o } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    roles: { type: 'string', default: '10' },
    loads: { type: 'string', default: '5' },
    changes: { type: 'string', default: '10' },
  },
});
const NODES = Math.max(50, Math.min(10_000, Number(o.nodes)));
const ROLES = Math.max(1, Math.min(10, Number(o.roles)));
const LOADS = Math.max(1, Math.min(50, Number(o.loads)));
const CHANGES = Math.max(1, Math.min(100, Number(o.changes)));
const root = fileURLToPath(new URL('..', import.meta.url));
const say = (l: string) => process.stdout.write(`${l}\n`);
const token = randomBytes(18).toString('base64url');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

// Stopped early (Ctrl-C), it still drops its database and streams and closes Chromium.
const scope = benchCleanups();
try {
  ensureDebianProgram({ candidates: ['/usr/bin/chromium'], pkg: 'chromium', why: 'the UI bench', log: say });
  const uiDir = await ensureUiBuild(root, say);
  const env = await benchEnvironment(scope, say);
  const base = {
    DATABASE_URL: env.databaseUrl,
    NATS_URL: env.natsUrl,
    CROWBAR_BUS_PREFIX: env.prefix,
    LOG_LEVEL: 'warn',
    CROWBAR_ADMIN_NODE: 'false',
    CROWBAR_BARCLAMPS: `${coreBarclampDir},${testBarclampDir}`,
    CROWBAR_ANNEAL_CAP: '200',
    CROWBAR_ANNEAL_PASS_MS: '200',
    CROWBAR_DB_POOL_MAX: '20',
    CROWBAR_JIG_CONCURRENCY: '200',
    CROWBAR_HTTP_PORT: '0',
    CROWBAR_HTTP_HOST: '127.0.0.1',
    CROWBAR_ADMIN_TOKEN: token,
    CROWBAR_UI_DIR: uiDir,
  };
  const hosted: HostedService[] = [];
  scope.defer(async () => {
    for (const h of hosted.reverse()) await h.stop('bench done');
  });
  const def = (n: string) => allServices.find((d) => d.name === n)!;
  for (const n of ['inventory', 'annealer', 'jig-runner', 'gateway'])
    hosted.push(await hostService(def(n), { env: base }));
  const url = `http://127.0.0.1:${hosted.at(-1)!.detail().port}`;
  const bus = await benchBus(scope, env);
  const op = <K extends InventoryOp>(name: K, args: InventoryOpRequest<K>) =>
    bus.request(inventoryOpRpcs[name], args, { timeoutMs: 120_000 });

  say(
    `ui bench: ${NODES} nodes × ${ROLES} noop roles (${NODES * ROLES} noderoles), annealed to ACTIVE first`,
  );
  await op('deployment.create', { name: 'bench' });
  const top = `bench-r${String(ROLES).padStart(2, '0')}`;
  const ids: number[] = [];
  let made = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (made < NODES) {
        const i = made++;
        const name = `u${String(i).padStart(5, '0')}.bench.crowbar.test`;
        const n = await op('node.create', { name, alive: true, available: true, deployment: 'bench' });
        ids[i] = n.id;
        await op('noderole.create', { node: n.id, role: top });
      }
    }),
  );
  await op('deployment.commit', { deployment: 'bench' });
  for (;;) {
    const s = await bus.request(inventoryAnnealRpcs.status, {});
    if (s.status === 'finished' && (s.counts.active ?? 0) >= NODES * ROLES) break;
    if (s.status === 'failed') throw new Error(`anneal failed: ${JSON.stringify(s.counts)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  say(`setup and anneal took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const t1 = Date.now();
  const nodesBody = await (
    await fetch(`${url}/api/v2/nodes`, { headers: { authorization: `Bearer ${token}` } })
  ).text();
  say(`GET /api/v2/nodes: ${(nodesBody.length / 1024).toFixed(0)} KiB in ${Date.now() - t1} ms`);

  const browser = await launchBrowser('bench-ui');
  scope.defer(() => browser.close());
  await browser.context.addInitScript((t) => {
    (globalThis as any).sessionStorage.setItem('crowbar.token', t);
  }, token);
  const renders: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const page = await browser.page();
    await page.goto(`${url}/#/nodes`);
    const ms = await page.waitForFunction(
      () => {
        const doc = (globalThis as any).document;
        const rows = doc.querySelectorAll('table.nodes tbody tr[data-node] td[data-state]');
        return rows.length >= 50 ? (globalThis as any).performance.now() : false;
      },
      undefined,
      { polling: 'raf', timeout: 30_000 },
    );
    renders.push(Math.round((await ms.jsonValue()) as number));
    if (i < LOADS - 1) await page.close();
  }
  say(`first 50 rows of the nodes page: ${renders.join(', ')} ms (the first with a cold cache)`);

  // The page left open watches its rows; each change is a committed node update.
  const page = browser.context.pages().at(-1)!;
  await page.locator('[data-live="live"]').waitFor({ timeout: 10_000 });
  await page.evaluate(() => {
    const g = globalThis as any;
    g.__shown = {};
    new g.MutationObserver((records: any[]) => {
      for (const r of records) {
        const name = r.target.getAttribute?.('data-node');
        if (name && r.attributeName === 'data-available')
          g.__shown[`${name}=${r.target.getAttribute('data-available')}`] ??= Date.now();
      }
    }).observe(g.document.querySelector('table.nodes'), {
      subtree: true,
      attributes: true,
      attributeFilter: ['data-available'],
    });
  });
  const committed = new Map<string, number>();
  const sub = bus.nc.subscribe(bus.subject('evt.node.changed.>'), {
    callback: (_e, m) => {
      const env = JSON.parse(new TextDecoder().decode(m.data));
      const n = env.data.node;
      committed.set(`${n.name}=${n.available}`, Date.parse(env.time));
    },
  });
  const updates: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const row = i % 50;
    const name = `u${String(row).padStart(5, '0')}.bench.crowbar.test`;
    const available = i % 100 >= 50;
    const key = `${name}=${available}`;
    await op('node.update', { node: ids[row]!, available });
    const shownAt = (await (
      await page.waitForFunction((k) => (globalThis as any).__shown[k], key, { timeout: 10_000 })
    ).jsonValue()) as number;
    for (let w = 0; !committed.has(key) && w < 100; w++) await new Promise((r) => setTimeout(r, 20));
    const at = committed.get(key);
    if (at === undefined) throw new Error(`no node.changed event seen for ${key}`);
    updates.push(shownAt - at);
  }
  sub.unsubscribe();
  say(`committed change → shown: ${updates.join(', ')} ms`);
  await browser.screenshot(page, 'nodes-page');
  const first = median(renders);
  const update = median(updates);
  say(
    JSON.stringify({
      bench: 'ui',
      first_render_ms: first,
      update_ms: update,
      first_render_cold_ms: renders[0],
      update_max_ms: Math.max(...updates),
      nodes: NODES,
      noderoles: NODES * ROLES,
      goal_first_render_ms: 1500,
      goal_update_ms: 1000,
    }),
  );
} finally {
  await scope.run();
}
