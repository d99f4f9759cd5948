import { describe, expect, it } from 'vitest';
import { useStack } from './helpers/stack.js';

/** One body rule for every route: empty is {}, which the route's schema accepts or refuses by field. */
const h = useStack(['inventory', 'network-ipam', 'dns-db', 'aliveness-probe', 'gateway'], {
  CROWBAR_DNS_ADDRESS: '127.0.0.1',
  CROWBAR_DNS_PORT: '0',
  CROWBAR_ADMIN_CIDR: '198.18.117.0/24',
});

describe('request bodies', () => {
  it('an empty body is {}: accepted where every field is optional, else a 422 naming the missing field', async () => {
    const s = h.stack;
    const net = await s.call('POST', '/networks', '');
    expect([net.status, net.body.field]).toEqual([422, 'name']);
    const filter = await s.call('POST', '/dns_name_filters', '');
    expect([filter.status, filter.body.field]).toEqual([422, 'name']);
    const node = await s.call('POST', '/nodes', '');
    expect([node.status, node.body.field]).toEqual([422, 'name']);
    const noChange = await s.call('PUT', '/dns_name_filters/default', '');
    expect(noChange.status).toBe(200);
    expect(noChange.body.name).toBe('default');
  });

  it('the same 422 for JSON that is not an object, whatever the route', async () => {
    for (const [method, path] of [
      ['POST', '/networks'],
      ['POST', '/dns_name_filters'],
      ['POST', '/nodes'],
      ['PUT', '/node-api/nodes/1/alive'],
    ] as const) {
      for (const bad of ['{nope', '[1,2]', '"text"', 'null']) {
        const r = await h.stack.call(
          method,
          path,
          bad,
          method === 'PUT' ? 'some-node-credential' : undefined,
        );
        expect([r.status, r.body.field], `${method} ${path} ${bad}`).toEqual([422, 'body']);
      }
    }
  });
});
