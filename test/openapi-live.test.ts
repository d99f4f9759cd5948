import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickPort } from '../infra/ports.js';
import { createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

// The document's answers against real ones: each call below goes through the gateway to the real
// services, and its answer must match the schema the served document gives for that route and status.
const h = {} as { t: TestEnv; stack: Stack; dir: string };
let doc: any;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const seen = new Set<string>();

beforeAll(async () => {
  h.dir = mkdtempSync(`${tmpdir()}/crowbar-openapi-live-`);
  h.t = await createTestEnv();
  h.stack = await startStack(
    h.t,
    [
      'inventory',
      'network-ipam',
      'annealer',
      'dhcp-db',
      'dns-db',
      'provisioner',
      'aliveness-probe',
      'gateway',
    ],
    {
      LOG_LEVEL: 'silent',
      CROWBAR_ADMIN_CIDR: '198.18.119.0/24',
      CROWBAR_DHCP_PORT: String(await pickPort(0)),
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_DNS_PORT: '0',
      CROWBAR_PROVISIONER_HTTP_PORT: String(await pickPort(0)),
      CROWBAR_TFTP_PORT: '0',
      CROWBAR_BOOT_ROOT: `${h.dir}/boot`,
    },
  );
  doc = (await fetch(`${h.stack.api}/openapi.json`).then((r) => r.json())) as any;
}, 120_000);
afterAll(async () => {
  await h.stack?.stop();
  await h.t?.cleanup();
  rmSync(h.dir, { recursive: true, force: true });
});

/** Calls `method path` and checks the answer against the documented schema of `route` for its status. */
async function call(method: string, route: string, path: string, body?: unknown) {
  const r = await h.stack.call(method, path, body);
  const op = doc.paths[route]?.[method.toLowerCase()];
  expect(op, `${method} ${route} is documented`).toBeDefined();
  let response = op.responses[String(r.status)];
  if (response?.$ref) response = doc.components.responses[response.$ref.split('/').pop()];
  expect(
    response,
    `${method} ${path} answered ${r.status}, which is not documented: ${JSON.stringify(r.body)}`,
  ).toBeDefined();
  const schema = response.content['application/json'].schema;
  const validate = ajv.compile(schema.$ref ? doc.components.schemas.Error : schema);
  expect(validate(r.body) ? [] : validate.errors, `${method} ${path} → ${r.status}`).toEqual([]);
  seen.add(`${method} ${route}`);
  return r;
}

describe('answers match the OpenAPI document', () => {
  it('inventory: nodes, noderoles, deployments, deployment roles, roles, attribs, the anneal', async () => {
    await call('POST', '/api/v2/deployments', '/deployments', { name: 'd1' });
    const n = (
      await call('POST', '/api/v2/nodes', '/nodes', {
        name: 'n1.lab.crowbar.test',
        alive: true,
        deployment: 'd1',
      })
    ).body;
    await call('GET', '/api/v2/nodes', '/nodes');
    await call('GET', '/api/v2/nodes/{id}', `/nodes/${n.id}`);
    await call('PUT', '/api/v2/nodes/{id}', `/nodes/${n.id}`, { description: 'x' });
    const nr = (await call('POST', '/api/v2/node_roles', '/node_roles', { node: n.id, role: 'test-top' }))
      .body;
    await call('GET', '/api/v2/node_roles/{id}', `/node_roles/${nr.id}`);
    await call('GET', '/api/v2/node_roles', `/node_roles?node=${n.id}`);
    await call('PUT', '/api/v2/node_roles/{id}', `/node_roles/${nr.id}`, { data: {} });
    await call('GET', '/api/v2/nodes/{id}/node_roles/{role}', `/nodes/${n.id}/node_roles/test-top`);
    await call('GET', '/api/v2/nodes/{id}/node_roles', `/nodes/${n.id}/node_roles`);
    await call('PUT', '/api/v2/nodes/{id}/attribs/{attrib}', `/nodes/${n.id}/attribs/test-rack`, {
      value: 'r1',
    });
    await call('GET', '/api/v2/nodes/{id}/attribs/{attrib}', `/nodes/${n.id}/attribs/test-rack`);
    await call('PUT', '/api/v2/node_roles/{id}/attribs/{attrib}', `/node_roles/${nr.id}/attribs/test-rack`, {
      value: 1,
    });
    await call('GET', '/api/v2/deployments', '/deployments');
    await call('GET', '/api/v2/deployments/{id}', '/deployments/d1');
    await call('GET', '/api/v2/deployments/{id}/graph', '/deployments/d1/graph');
    await call('GET', '/api/v2/deployments/{id}/preview', '/deployments/d1/preview');
    await call('GET', '/api/v2/deployments/{id}/node_roles', '/deployments/d1/node_roles');
    const dr = (
      await call('POST', '/api/v2/deployment_roles', '/deployment_roles', {
        deployment: 'd1',
        role: 'test-top',
      })
    ).body;
    await call('GET', '/api/v2/deployment_roles/{id}', `/deployment_roles/${dr.id}`);
    await call('GET', '/api/v2/deployment_roles', '/deployment_roles');
    await call('GET', '/api/v2/deployments/{id}/deployment_roles', '/deployments/d1/deployment_roles');
    await call('PUT', '/api/v2/deployment_roles/{id}', `/deployment_roles/${dr.id}`, {
      data: { test: { x: 1 } },
    });
    await call('PUT', '/api/v2/deployment_roles/{id}/commit', `/deployment_roles/${dr.id}/commit`);
    await call('PUT', '/api/v2/deployment_roles/{id}/propose', `/deployment_roles/${dr.id}/propose`);
    await call('GET', '/api/v2/roles', '/roles');
    await call('GET', '/api/v2/roles/{id}', '/roles/test-top');
    await call('GET', '/api/v2/attribs', '/attribs');
    await call('PUT', '/api/v2/nodes/{id}/commit', `/nodes/${n.id}/commit`);
    await call('PUT', '/api/v2/deployments/{id}/commit', '/deployments/d1/commit');
    await call('GET', '/api/v2/anneal', '/anneal');
    await call('PUT', '/api/v2/deployments/{id}/propose', '/deployments/d1/propose');
    await call('PUT', '/api/v2/nodes/{id}/propose', `/nodes/${n.id}/propose`);
    await call('PUT', '/api/v2/node_roles/{id}/propose', `/node_roles/${nr.id}/propose`);
    // Errors answer the documented error body, with the field or rule.
    expect((await call('PUT', '/api/v2/node_roles/{id}/retry', `/node_roles/${nr.id}/retry`)).status).toBe(
      409,
    );
    expect((await call('GET', '/api/v2/nodes/{id}', '/nodes/ghost.lab.crowbar.test')).status).toBe(404);
    expect((await call('POST', '/api/v2/deployments', '/deployments', { name: 'Bad' })).status).toBe(422);
    await call('GET', '/api/v2/runs', '/runs?all=true');
    await call('DELETE', '/api/v2/node_roles/{id}', `/node_roles/${nr.id}`);
    await call('DELETE', '/api/v2/nodes/{id}', `/nodes/${n.id}`);
    await call('DELETE', '/api/v2/deployments/{id}', '/deployments/d1');
  });

  it('networks, dhcp, dns, provisioner, aliveness and the gateway', async () => {
    const n = (await call('POST', '/api/v2/nodes', '/nodes', { name: 'n2.lab.crowbar.test', alive: true }))
      .body;
    await call('GET', '/api/v2/networks', '/networks');
    await call('GET', '/api/v2/networks/{id}', '/networks/admin');
    await call('GET', '/api/v2/network_ranges', '/network_ranges');
    await call('GET', '/api/v2/network_ranges/{id}', '/network_ranges/host?network=admin');
    await call('GET', '/api/v2/network_routers', '/network_routers');
    const a = (
      await call('POST', '/api/v2/network_allocations', '/network_allocations', {
        node: n.id,
        network: 'admin',
      })
    ).body;
    await call('GET', '/api/v2/network_allocations', '/network_allocations');
    await call('GET', '/api/v2/network_allocations/{id}', `/network_allocations/${a.allocations[0].id}`);
    await call('GET', '/api/v2/networks/{id}/allocations', '/networks/admin/allocations');
    await call('GET', '/api/v2/nodes/{id}/addresses', `/nodes/${n.id}/addresses`);
    await call('GET', '/api/v2/network_ula', '/network_ula');
    await call('GET', '/api/v2/network_lookup', '/network_lookup?ip=198.18.0.90');
    await call('DELETE', '/api/v2/network_allocations/{id}', `/network_allocations/${a.allocations[0].id}`);
    await call('GET', '/api/v2/dhcp/leases', '/dhcp/leases');
    await call('GET', '/api/v2/dhcp/reservations', '/dhcp/reservations');
    await call('GET', '/api/v2/dhcp/stats', '/dhcp/stats');
    await call('GET', '/api/v2/dns/zones', '/dns/zones');
    await call('GET', '/api/v2/dns/zones/{zone}', '/dns/zones/crowbar.internal');
    await call('GET', '/api/v2/dns/client', '/dns/client');
    await call('GET', '/api/v2/dns_name_filters', '/dns_name_filters');
    await call('GET', '/api/v2/bootenvs', '/bootenvs');
    await call('GET', '/api/v2/boot_events', '/boot_events');
    await call('GET', '/api/v2/nodes/{id}/boot_events', `/nodes/${n.id}/boot_events`);
    await call('GET', '/api/v2/nodes/{id}/health', `/nodes/${n.id}/health`);
    await call('GET', '/api/v2/health', '/health');
    await call('GET', '/api/v2/whoami', '/whoami');
    const tok = (await call('POST', '/api/v2/tokens', '/tokens', { name: 'live', role: 'admin' })).body;
    await call('GET', '/api/v2/tokens', '/tokens');
    await call('DELETE', '/api/v2/tokens/{id}', `/tokens/${tok.id}`);
    await call('GET', '/api/v2/audit', '/audit?limit=5');
    expect(seen.size).toBeGreaterThan(55);
  });
});
