import { expect, it } from 'vitest';
import { until } from './helpers/inventory.js';
import { useStack } from './helpers/stack.js';

// A node's noderoles may need a service role on the deployment's phantom node (dns-client needs
// dns-service). Committing the node commits that proposed service noderole too, or the node would stay
// BLOCKED until someone found and committed it by hand.
const h = useStack(['inventory', 'annealer', 'jig-runner', 'dns-db', 'gateway'], {
  CROWBAR_ANNEAL_PASS_MS: '100',
  CROWBAR_DNS_ADDRESS: '127.0.0.1',
  CROWBAR_DNS_PORT: '0',
  CROWBAR_DNS_SERVERS: '198.18.0.2',
});

it('committing a node commits the proposed service roles its noderoles need on the phantom node', async () => {
  const s = h.stack;
  const n = await s.call('POST', '/nodes', { name: 'client.lab.crowbar.test', alive: true });
  const client = await s.call('POST', '/node_roles', { node: n.body.id, role: 'dns-client' });
  expect(client.status).toBe(201);
  const svc = (await s.call('GET', '/node_roles?role=dns-service')).body.noderoles;
  expect(svc).toHaveLength(1);
  expect(svc[0]).toMatchObject({ node: 'system-phantom.internal.local', state: 'proposed' });
  expect((await s.call('PUT', `/nodes/${n.body.id}/commit`)).status).toBe(200);
  expect((await s.call('GET', `/node_roles/${svc[0].id}`)).body.state).not.toBe('proposed');
  await until(
    'dns-service active after the node commit',
    async () => (await s.call('GET', `/node_roles/${svc[0].id}`)).body.state === 'active',
    30_000,
  );
});
