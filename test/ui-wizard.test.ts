import { afterAll, beforeAll, expect, it } from 'vitest';
import { axeViolations, type Browser, launchBrowser } from './helpers/browser.js';
import { until } from './helpers/inventory.js';
import { testAdminToken, useStack } from './helpers/stack.js';

// The install wizard in Chromium, from a start like `npm start -- --wizard` (no bootstrap admin network,
// no admin node) to a committed system deployment, with the API's refusals shown at their fields.
const h = useStack(['network-ipam', 'inventory', 'annealer', 'jig-runner', 'dns-db', 'gateway'], {
  CROWBAR_BOOTSTRAP_ADMIN_NETWORK: 'false',
  CROWBAR_ADMIN_NODE: 'false',
  CROWBAR_ANNEAL_PASS_MS: '100',
  CROWBAR_DNS_ADDRESS: '127.0.0.1',
  CROWBAR_DNS_PORT: '0',
  CROWBAR_DNS_DOMAIN: 'lab.crowbar.test',
});
let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser('ui-wizard');
});
afterAll(async () => {
  await browser?.close();
});

it('leads the first sign-in through the admin network and admin node to a committed system deployment', async () => {
  expect((await h.stack.call('GET', '/networks?category=admin')).body.networks).toEqual([]);
  const page = await browser.page();
  try {
    const base = h.stack.api.replace(/\/api\/v2$/, '');
    await page.goto(`${base}/`);
    await page.getByLabel('Operator token').fill(testAdminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Install wizard' }).waitFor();
    expect(page.url()).toMatch(/#\/wizard$/);

    // The ranges follow the subnet, as the bootstrap lays them out.
    await page.getByLabel('IPv4 subnet (CIDR)').fill('198.18.120.0/24');
    expect(await page.getByLabel('admin first').inputValue()).toBe('198.18.120.10/24');
    expect(await page.getByLabel('host last').inputValue()).toBe('198.18.120.254/24');
    await page.getByLabel('Router').fill('198.18.121.1/24');
    await browser.screenshot(page, 'wizard-network');
    expect(await axeViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Next' }).click();
    expect(await page.getByLabel('Admin node name (FQDN)').inputValue()).toBe('admin.lab.crowbar.test');
    expect(await page.getByLabel('Admin node address (IPv4, in the admin range)').inputValue()).toBe(
      '198.18.120.10',
    );
    await page.getByText('lab.crowbar.test', { exact: true }).waitFor();
    await page.getByLabel('Admin node name (FQDN)').fill('admin');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('[data-review]').getByText('the admin network').waitFor();
    await browser.screenshot(page, 'wizard-review');

    // The router is refused by network-ipam: the wizard goes back to it with the API's message.
    await page.getByRole('button', { name: 'Create' }).click();
    const routerError = page.locator('#router-error');
    await routerError.waitFor();
    expect(await routerError.textContent()).toContain('outside the subnet');
    await page.getByLabel('Router').fill('198.18.120.1/24');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click();
    // Now the network is made, and the node's name is refused by inventory.
    await page.getByRole('button', { name: 'Create' }).click();
    const nameError = page.locator('#node-name-error');
    await nameError.waitFor();
    expect(await nameError.textContent()).toContain('FQDN');
    await browser.screenshot(page, 'wizard-refused');
    expect(await axeViolations(page)).toEqual([]);
    await page.getByLabel('Admin node name (FQDN)').fill('admin.lab.crowbar.test');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Create' }).click();
    const progress = page.locator('[data-progress]');
    await progress.getByText('committed the system deployment').waitFor({ timeout: 30_000 });
    expect(await progress.textContent()).toContain('the admin network admin was there already');
    await browser.screenshot(page, 'wizard-done');
  } finally {
    await page.close();
  }

  const nets = (await h.stack.call('GET', '/networks?category=admin')).body.networks;
  expect(nets.map((n: any) => [n.name, n.subnets[0]])).toEqual([['admin', '198.18.120.0/24']]);
  expect(nets[0].ranges.map((r: any) => r.name)).toEqual(expect.arrayContaining(['admin', 'dhcp', 'host']));
  const admin = (await h.stack.call('GET', '/nodes')).body.nodes.filter((n: any) => n.admin);
  expect(admin.map((n: any) => n.name)).toEqual(['admin.lab.crowbar.test']);
  const system = (await h.stack.call('GET', '/deployments/system')).body;
  expect(system.state).toBe('committed');
  // Committed: none of the admin node's noderoles is left PROPOSED, and it joined the admin network at
  // the address the wizard asked for.
  const nrs = (await h.stack.call('GET', `/nodes/${admin[0].id}/node_roles`)).body.noderoles;
  expect(nrs.map((n: any) => n.role)).toEqual(
    expect.arrayContaining(['crowbar-admin-node', 'network-admin']),
  );
  expect(nrs.filter((n: any) => n.state === 'proposed')).toEqual([]);
  await until('the admin address', async () => {
    const a = (await h.stack.call('GET', `/nodes/${admin[0].id}/addresses`)).body.allocations ?? [];
    return a.some((x: any) => x.address === '198.18.120.10/24');
  });
}, 120_000);
