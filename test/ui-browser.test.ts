import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { axeViolations, type Browser, launchBrowser } from './helpers/browser.js';
import { testAdminToken, testReadOnlyToken, useStack } from './helpers/stack.js';

// The web UI in Debian's Chromium against a real stack (inventory, annealer, jig-runner, gateway), the
// test barclamp's noop roles annealing for real. Screenshots: <state dir>/test-artifacts/ui-browser/.
const h = useStack(['inventory', 'annealer', 'jig-runner', 'gateway'], { CROWBAR_ANNEAL_PASS_MS: '100' });
let browser: Browser;
let base: string;
const ids = { node: 0, other: 0, deployment: 0 };

beforeAll(async () => {
  browser = await launchBrowser('ui-browser');
  base = h.stack.api.replace(/\/api\/v2$/, '');
  const node = await h.stack.call('POST', '/nodes', {
    name: 'web1.lab.crowbar.test',
    alive: true,
    available: true,
  });
  expect(node.status).toBe(201);
  const other = await h.stack.call('POST', '/nodes', {
    name: 'web2.lab.crowbar.test',
    alive: true,
    available: true,
  });
  expect(other.status).toBe(201);
  const dep = await h.stack.call('POST', '/deployments', { name: 'webapp' });
  expect(dep.status).toBe(201);
  Object.assign(ids, { node: node.body.id, other: other.body.id, deployment: dep.body.id });
});
afterAll(async () => {
  await browser?.close();
});

async function signIn(page: Page, token: string) {
  await page.goto(`${base}/`);
  await page.getByLabel('Operator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-live="live"]').waitFor({ timeout: 10_000 });
}

const pages = (d: number, n: number): [string, string, string][] => [
  ['overview', '#/', 'Overview'],
  ['nodes', '#/nodes', 'Nodes'],
  ['node', `#/nodes/${n}`, 'web1.lab.crowbar.test'],
  ['deployments', '#/deployments', 'Deployments'],
  ['deployment', `#/deployments/${d}`, 'Deployment webapp'],
  ['networks', '#/networks', 'Networks'],
  ['runs', '#/runs', 'Runs'],
];

describe('web UI', () => {
  it('refuses a wrong token at sign-in', async () => {
    const page = await browser.page();
    try {
      await page.goto(`${base}/`);
      await page.getByLabel('Operator token').fill('not-the-token-0123456789');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('That token was refused');
      expect(
        await page.evaluate(() => (globalThis as any).sessionStorage.getItem('crowbar.token')),
      ).toBeNull();
      expect(await page.locator('nav[aria-label="Main"]').count()).toBe(0);
      await browser.screenshot(page, 'signin-refused');
    } finally {
      await page.close();
    }
  });

  it('drag a node onto a role, commit, and watch its noderoles go ACTIVE without a reload', async () => {
    const page = await browser.page();
    try {
      await signIn(page, testAdminToken);
      await page.goto(`${base}/#/deployments/${ids.deployment}`);
      await page.getByRole('heading', { name: /Deployment webapp/ }).waitFor();
      // A marker that a reload would lose.
      await page.evaluate(() => {
        (globalThis as any).__noReload = true;
      });
      await page.getByRole('form', { name: 'Add a role' }).getByLabel('Role').selectOption('test-top');
      await page.getByRole('button', { name: 'Add role' }).click();
      const column = page.locator('[data-drop-role="test-top"]');
      await column.waitFor();
      await page.locator('[data-drag-node="web1.lab.crowbar.test"]').dragTo(column);
      const card = page.locator('[data-noderole="test-top@web1.lab.crowbar.test"]');
      await expect.poll(() => card.getAttribute('data-state'), { timeout: 10_000 }).toBe('proposed');
      // Record every state the board shows for the noderole, as it shows it.
      await page.evaluate(() => {
        const seen: string[] = [];
        (globalThis as any).__seen = seen;
        const doc = (globalThis as any).document;
        const el = () => doc.querySelector('[data-noderole="test-top@web1.lab.crowbar.test"]');
        const note = () => {
          const s = el()?.getAttribute('data-state');
          if (s && seen[seen.length - 1] !== s) seen.push(s);
        };
        note();
        new (globalThis as any).MutationObserver(note).observe(doc.body, {
          subtree: true,
          childList: true,
          attributes: true,
          attributeFilter: ['data-state'],
        });
      });
      await browser.screenshot(page, 'deployment-proposed');
      await page.getByRole('button', { name: 'Commit…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Commit webapp?' });
      await dialog.waitFor();
      const preview = await h.stack.call('GET', `/deployments/${ids.deployment}/preview`);
      if (preview.status === 200) {
        // The preview (the engine's) lists what the commit starts: the noderoles that go TODO.
        expect(preview.body.noderoles.length).toBeGreaterThan(0);
        const rows = dialog.locator('[data-preview] tbody tr');
        await expect.poll(() => rows.count()).toBe(preview.body.noderoles.length);
        for (const [i, n] of preview.body.noderoles.entries())
          expect(await rows.nth(i).textContent()).toContain(`${n.node}${n.role}`);
      } else {
        expect(preview.status).toBe(404);
        await dialog.getByText('cannot preview a commit yet').waitFor();
      }
      await browser.screenshot(page, 'commit-dialog');
      await dialog.getByRole('button', { name: 'confirm commit' }).click();
      await expect.poll(() => card.getAttribute('data-state'), { timeout: 30_000 }).toBe('active');
      // The graph follows too: every noderole of the deployment ACTIVE.
      const vertices = page.locator('.graph [data-vertex]');
      await expect
        .poll(
          async () => [
            ...new Set(await vertices.evaluateAll((v) => v.map((x) => x.getAttribute('data-state')))),
          ],
          {
            timeout: 15_000,
          },
        )
        .toEqual(['active']);
      const seen = (await page.evaluate(() => (globalThis as any).__seen)) as string[];
      // Shown in the order the engine moves it, ending ACTIVE (states too quick to paint may be skipped).
      if (process.env.TEST_DEBUG) console.log('states shown', seen);
      const order = ['proposed', 'blocked', 'todo', 'transition', 'active'];
      expect(seen[0]).toBe('proposed');
      expect(seen.at(-1)).toBe('active');
      expect(seen.map((x) => order.indexOf(x))).toEqual([...seen.map((x) => order.indexOf(x))].sort());
      expect(await page.evaluate(() => (globalThis as any).__noReload)).toBe(true);
      const api = (await h.stack.call('GET', `/deployments/${ids.deployment}/node_roles`)).body.noderoles;
      expect(api.find((n: any) => n.role === 'test-top').state).toBe('active');
      await browser.screenshot(page, 'deployment-active');
    } finally {
      await page.close();
    }
  });

  it('binds with the keyboard form; a failing role shows ERROR and its run log', async () => {
    const page = await browser.page();
    try {
      await signIn(page, testAdminToken);
      await page.goto(`${base}/#/deployments/${ids.deployment}`);
      await page.getByRole('form', { name: 'Add a role' }).getByLabel('Role').selectOption('test-fail');
      await page.getByRole('button', { name: 'Add role' }).click();
      await page.locator('[data-drop-role="test-fail"]').waitFor();
      const form = page.getByRole('form', { name: 'Bind a node to a role' });
      await form.getByLabel('Node').selectOption({ label: 'web2.lab.crowbar.test' });
      await form.getByLabel('Role').selectOption('test-fail');
      await form.getByRole('button', { name: 'Bind' }).focus();
      await page.keyboard.press('Enter');
      const card = page.locator('[data-noderole="test-fail@web2.lab.crowbar.test"]');
      await expect.poll(() => card.getAttribute('data-state'), { timeout: 10_000 }).toBe('proposed');
      await page.getByRole('button', { name: 'Commit…' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'confirm commit' }).click();
      await expect.poll(() => card.getAttribute('data-state'), { timeout: 60_000 }).toBe('error');
      await card.getByRole('button', { name: 'log' }).click();
      const log = page.getByRole('region', { name: 'run log of test-fail on web2.lab.crowbar.test' });
      await log.waitFor();
      const api = (await h.stack.call('GET', '/nodes/web2.lab.crowbar.test/node_roles/test-fail')).body;
      expect(api.state).toBe('error');
      expect(api.runlog.length).toBeGreaterThan(0);
      await expect.poll(() => log.locator('pre').textContent()).toBe(api.runlog);
      await browser.screenshot(page, 'noderole-error-runlog');
      // Its data in the JSON editor: text that is not a JSON object is refused before it is sent; an
      // object is saved as the noderole's proposed data.
      const editor = log.getByRole('textbox', { name: 'data of test-fail on web2.lab.crowbar.test' });
      // Inventory takes data only while a noderole is proposed: the editor says so until it is.
      expect(await editor.isDisabled()).toBe(true);
      await log.getByText('editable while the noderole is proposed').waitFor();
      await log.getByRole('button', { name: 'propose test-fail' }).click();
      await expect.poll(() => card.getAttribute('data-state')).toBe('proposed');
      await expect.poll(() => editor.isEnabled()).toBe(true);
      await editor.fill('{"test": ');
      await log.getByRole('button', { name: 'save data of test-fail on web2.lab.crowbar.test' }).click();
      await expect.poll(() => log.getByRole('alert').textContent()).toContain('not JSON');
      await editor.fill('{"test": {"should_fail": false}}');
      await log.getByRole('button', { name: 'save data of test-fail on web2.lab.crowbar.test' }).click();
      await log.getByText('saved').waitFor();
      const saved = (await h.stack.call('GET', `/node_roles/${api.id}`)).body;
      expect(saved.proposedData).toEqual({ test: { should_fail: false } });
    } finally {
      await page.close();
    }
  });

  it('asks for confirmation before a commit that starts a destructive role', async () => {
    const dep = await h.stack.call('POST', '/deployments', { name: 'wipe' });
    expect(
      (await h.stack.call('POST', '/deployment_roles', { deployment: dep.body.id, role: 'test-destructive' }))
        .status,
    ).toBe(201);
    expect(
      (
        await h.stack.call('POST', '/node_roles', {
          node: ids.other,
          role: 'test-destructive',
          deployment: dep.body.id,
        })
      ).status,
    ).toBe(201);
    const preview = await h.stack.call('GET', `/deployments/${dep.body.id}/preview`);
    const page = await browser.page();
    try {
      await signIn(page, testAdminToken);
      await page.goto(`${base}/#/deployments/${dep.body.id}`);
      await page.getByRole('button', { name: 'Commit…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Commit wipe?' });
      const commit = dialog.getByRole('button', { name: 'confirm commit' });
      if (preview.status === 200) {
        expect(preview.body.noderoles.some((n: any) => n.destructive)).toBe(true);
        await dialog.locator('tr.destructive').getByText('destructive', { exact: true }).waitFor();
        const sure = dialog.getByRole('checkbox');
        await sure.waitFor();
        expect(await commit.isDisabled()).toBe(true);
        await browser.screenshot(page, 'commit-destructive');
        await sure.check();
        expect(await commit.isEnabled()).toBe(true);
      } else {
        expect(preview.status).toBe(404);
        await dialog.getByText('cannot preview a commit yet').waitFor();
      }
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      // Nothing was committed.
      const d = await h.stack.call('GET', `/deployments/${dep.body.id}`);
      expect(d.body.state).toBe('proposed');
    } finally {
      await page.close();
    }
  });

  it('renders every page with no critical accessibility violation (screenshots kept)', async () => {
    const page = await browser.page();
    try {
      await signIn(page, testAdminToken);
      for (const [name, hash, heading] of pages(ids.deployment, ids.node)) {
        await page.goto(`${base}/${hash}`);
        await page.getByRole('heading', { level: 1, name: heading }).waitFor();
        await page.waitForLoadState('networkidle').catch(() => undefined);
        await browser.screenshot(page, `page-${name}`);
        const bad = await axeViolations(page);
        expect(bad, `${name}: ${JSON.stringify(bad, null, 1)}`).toEqual([]);
      }
    } finally {
      await page.close();
    }
  });

  it('gives the read-only token a UI with no enabled mutation', async () => {
    const page = await browser.page();
    try {
      await signIn(page, testReadOnlyToken);
      await page.getByText('read-only', { exact: true }).waitFor();
      let controls = 0;
      for (const [name, hash, heading] of pages(ids.deployment, ids.node)) {
        await page.goto(`${base}/${hash}`);
        await page.getByRole('heading', { level: 1, name: heading }).waitFor();
        await page.waitForLoadState('networkidle').catch(() => undefined);
        controls += await page.locator('[data-mutation]').count();
        expect(await page.locator('[data-mutation]:enabled').count(), name).toBe(0);
        expect(await page.locator('[draggable="true"]').count(), name).toBe(0);
        await browser.screenshot(page, `readonly-${name}`);
      }
      // The pages do have mutation controls (so the check above could fail): they are all disabled.
      expect(controls).toBeGreaterThan(5);
      // And the server refuses anyway.
      const r = await h.stack.call('POST', '/deployments', { name: 'nope' }, testReadOnlyToken);
      expect(r.status).toBe(403);
    } finally {
      await page.close();
    }
  });
});
