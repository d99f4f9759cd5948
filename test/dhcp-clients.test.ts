import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleRun } from '../shared/catalogue/index.js';
import {
  type ClientEvent,
  createDhcpLab,
  type DhcpLab,
  type DhcpLink,
  until,
} from './helpers/dhcp-clients.js';
import { connectTestBus, createTestEnv, type TestEnv } from './helpers/env.js';
import { type Stack, startStack } from './helpers/stack.js';

/**
 * dhcp-db with its real owners (inventory, network-ipam, dns-db) and real clients in network
 * namespaces: busybox udhcpc and ISC dhclient. The admin network is 198.18.110.0/24 on a veth whose root
 * side (a bridge) carries the admin node's address 198.18.110.10.
 */
const server = '198.18.110.10';
const domain = 'dhcp.test';
let t: TestEnv;
let stack: Stack;
let lab: DhcpLab;
let link: DhcpLink;
let link2: DhcpLink;
let bus: Awaited<ReturnType<typeof connectTestBus>>;

const inRange = (ip: string, lo: number, hi: number) => {
  const last = Number(ip.split('.')[3]);
  return ip.startsWith('198.18.110.') && last >= lo && last <= hi;
};
const bound = (events: ClientEvent[]) => events.filter((e) => e.event === 'bound' || e.event === 'BOUND');

beforeAll(async () => {
  lab = createDhcpLab({ serverAddress: server, prefix: 24 });
  link = lab.addLink();
  link2 = lab.addLink();
  t = await createTestEnv();
  stack = await startStack(
    t,
    ['inventory', 'network-ipam', 'annealer', 'jig-runner', 'dhcp-db', 'dns-db', 'gateway'],
    {
      CROWBAR_ANNEAL_PASS_MS: '100',
      CROWBAR_ADMIN_CIDR: '198.18.110.0/24',
      CROWBAR_DHCP_INTERFACES: lab.bridge,
      CROWBAR_DNS_DOMAIN: domain,
      CROWBAR_DNS_ADDRESS: '127.0.0.1',
      CROWBAR_DNS_PORT: '0',
      CROWBAR_DNS_SERVERS: `127.0.0.1,${server}`,
      CROWBAR_DHCP_NTP_SERVERS: '198.18.110.1',
    },
  );
  bus = await connectTestBus(t);
  // The admin network reaches dhcp-db through network-ipam's events.
  await until('dhcp-db to serve the admin network', async () => {
    const s = await stack.call('GET', '/dhcp/stats');
    return s.status === 200 && s.body.interfaces[0]?.listening && s.body.dns.domain === domain;
  });
});
afterAll(async () => {
  await bus?.close();
  await stack?.stop();
  await t?.cleanup();
  lab?.cleanup();
});

describe('dhcp-db with udhcpc and dhclient', () => {
  it('gives an unknown BIOS PXE client a dhcp-range address and the BIOS iPXE loader over TFTP', async () => {
    await lab.udhcpcOnce(link, 'bios', ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000']);
    const [e] = bound(lab.events('bios'));
    expect(e).toBeDefined();
    expect(inRange(e!.ip!, 21, 80)).toBe(true);
    expect(e!.boot_file).toBe('undionly.kpxe');
    expect(e!.siaddr).toBe(server);
    expect(e!.serverid).toBe(server);
    expect(e!.subnet).toBe('255.255.255.0');
    expect(e!.router).toBe('198.18.110.1');
    // dns-db's address on this network only, not every address it serves on.
    expect(e!.dns).toBe(server);
    expect(e!.domain).toBe(domain);
    expect(e!.ntpsrv).toBe('198.18.110.1');
    expect(Number(e!.lease)).toBeGreaterThan(0);
    lab.flush(link);
  });

  it('sends a client running iPXE to the HTTP URL of its iPXE script', async () => {
    await lab.udhcpcOnce(link, 'ipxe', [
      '-V',
      'PXEClient:Arch:00007:UNDI:003010',
      '-x',
      '0x5d:0007',
      '-x',
      '0x4d:69505845',
    ]);
    const [e] = bound(lab.events('ipxe'));
    expect(e!.boot_file).toBe(`http://${server}:8091/boot/${link.mac.replaceAll(':', '-')}.ipxe`);
    // The same MAC keeps its address across exchanges.
    expect(e!.ip).toBe(bound(lab.events('bios'))[0]!.ip);
    lab.flush(link);
  });

  it('gives a plain OS client (no PXE vendor class) an address and no boot program', async () => {
    await lab.udhcpcOnce(link2, 'plain');
    const [e] = bound(lab.events('plain'));
    expect(inRange(e!.ip!, 21, 80)).toBe(true);
    expect(e!.boot_file ?? '').toBe('');
    expect(e!.ip).not.toBe(bound(lab.events('bios'))[0]!.ip);
    lab.flush(link2);
  });

  let nodeId: number;
  let hostAddress: string;
  it('moves a client to its reservation once its MAC is a node with a host address (NAK, then the new address)', async () => {
    const child = lab.udhcpc(link, 'moving', {
      once: false,
      extra: ['-V', 'PXEClient:Arch:00000:UNDI:002001'],
    });
    const first = await until('first lease', () => bound(lab.events('moving'))[0]);
    expect(inRange(first.ip!, 21, 80)).toBe(true);

    const n = await stack.call('POST', '/nodes', { name: `n1.${domain}`, mac: link.mac });
    expect(n.status).toBe(201);
    nodeId = n.body.id;
    const alloc = await until('allocation', async () => {
      const r = await stack.call('POST', '/network_allocations', { node: nodeId, network: 'admin' });
      return r.status < 300 ? r : null;
    });
    hostAddress = /"(198\.18\.110\.\d+)\/24"/.exec(JSON.stringify(alloc.body))![1]!;
    expect(inRange(hostAddress, 81, 254)).toBe(true);
    await until('the reservation', async () => {
      const r = await stack.call('GET', `/dhcp/reservations?node=${nodeId}`);
      return r.body[0]?.address === hostAddress;
    });

    child.kill('SIGUSR1'); // renew now
    const moved = await until('the reserved address', () =>
      bound(lab.events('moving')).find((e) => e.ip === hostAddress),
    );
    expect(moved.hostname).toBe('n1');
    expect(lab.events('moving').some((e) => e.event === 'nak')).toBe(true);

    // The old anonymous lease was given up; the new one is bound to the node.
    const leases = await stack.call('GET', `/dhcp/leases?mac=${link.mac}`);
    const byAddress = new Map(leases.body.leases.map((l: { address: string }) => [l.address, l]));
    expect(byAddress.get(hostAddress)).toMatchObject({
      state: 'bound',
      nodeId,
      range: 'host',
      hostname: 'n1',
    });
    expect(byAddress.get(first.ip!)).toMatchObject({ state: 'released' });

    // A bootenv change: the next answer boots from disk (no boot program).
    const before = lab.events('moving').length;
    expect((await stack.call('PUT', `/nodes/${nodeId}`, { bootenv: 'local' })).status).toBe(200);
    await until('bootenv local served', async () => {
      const r = await stack.call('GET', `/dhcp/reservations?node=${nodeId}`);
      return r.body[0]?.bootenv === 'local';
    });
    child.kill('SIGUSR1');
    const renewed = await until('renewal', () =>
      lab
        .events('moving')
        .slice(before)
        .find((e) => e.event === 'renew' || e.event === 'bound'),
    );
    expect(renewed.ip).toBe(hostAddress);
    expect(renewed.boot_file ?? '').toBe('');
    child.kill('SIGKILL');
    lab.flush(link);
  });

  it('the dhcp-database run returns only once the reservation shows the new bootenv', async () => {
    expect((await stack.call('PUT', `/nodes/${nodeId}`, { bootenv: 'sledgehammer' })).status).toBe(200);
    const r = await bus.request(
      roleRun['dhcp-db'],
      { runId: 1, noderoleId: 1, role: 'dhcp-database', nodeId, node: `n1.${domain}`, data: {} },
      { timeoutMs: 40_000 },
    );
    expect(r.log).toMatch(/match/);
    const res = await stack.call('GET', `/dhcp/reservations?node=${nodeId}`);
    expect(res.body[0]).toMatchObject({ bootenv: 'sledgehammer', address: hostAddress });
  });

  it('a committed dhcp-database noderole is run by dhcp-db and goes ACTIVE with its wall', async () => {
    expect((await stack.call('PUT', `/nodes/${nodeId}`, { alive: true, available: true })).status).toBe(200);
    const nr = await stack.call('POST', '/node_roles', { node: nodeId, role: 'dhcp-database' });
    expect(nr.status).toBe(201);
    await stack.call('PUT', `/node_roles/${nr.body.id}/commit`);
    const done = await until(
      'dhcp-database active',
      async () => {
        const r = (await stack.call('GET', `/node_roles/${nr.body.id}`)).body;
        return r.state === 'active' ? r : null;
      },
      30_000,
    );
    expect(done.wall.dhcp.reservations).toBeGreaterThanOrEqual(1);
    expect(done.runlog).toContain('reservation(s) match');
  });

  it('ISC dhclient: INIT-REBOOT of an address that is no longer its own gets NAK, then its reservation', async () => {
    // link2's MAC got an anonymous address above; dhclient learns one too and remembers it.
    const c1 = lab.dhclient(link2, 'dh');
    const first = await until('dhclient lease', () => lab.events('dh').find((e) => e.reason === 'BOUND'));
    expect(inRange(first.new_ip_address!, 21, 80)).toBe(true);
    // dhclient writes its lease file after the script ran: the INIT-REBOOT below needs it there.
    await until('dhclient lease file', () => {
      try {
        return readFileSync(join(lab.dir, 'dh.leases'), 'utf8').includes(first.new_ip_address!);
      } catch {
        return false;
      }
    });
    c1.kill('SIGKILL');
    lab.flush(link2);

    const n = await stack.call('POST', '/nodes', { name: `n2.${domain}`, mac: link2.mac });
    expect(n.status).toBe(201);
    const alloc = await until('allocation', async () => {
      const r = await stack.call('POST', '/network_allocations', { node: n.body.id, network: 'admin' });
      return r.status < 300 ? r : null;
    });
    const reserved = /"(198\.18\.110\.\d+)\/24"/.exec(JSON.stringify(alloc.body))![1]!;
    await until('the reservation', async () => {
      const r = await stack.call('GET', `/dhcp/reservations?node=${n.body.id}`);
      return r.body[0]?.address === reserved;
    });
    const before = (await stack.call('GET', '/dhcp/stats')).body.replied.nak ?? 0;
    const c2 = lab.dhclient(link2, 'dh');
    const next = await until('dhclient reservation', () =>
      lab.events('dh').find((e) => e.reason !== undefined && e.new_ip_address === reserved),
    );
    expect(next.new_host_name).toBe('n2');
    expect(next.new_domain_name).toBe(domain);
    const after = (await stack.call('GET', '/dhcp/stats')).body.replied.nak ?? 0;
    expect(after).toBeGreaterThan(before);
    c2.kill('SIGKILL');
  });

  it('answers operator release and bad API input', async () => {
    const leases = await stack.call('GET', '/dhcp/leases?state=bound');
    expect(leases.status).toBe(200);
    const one = leases.body.leases.find((l: { address: string }) => l.address === hostAddress);
    expect(one).toBeDefined();
    const del = await stack.call('DELETE', `/dhcp/leases/${hostAddress}`);
    expect(del.status).toBe(200);
    expect(del.body.state).toBe('released');
    expect((await stack.call('DELETE', `/dhcp/leases/${hostAddress}`)).status).toBe(404);
    expect((await stack.call('DELETE', '/dhcp/leases/not-an-ip')).status).toBe(422);
    expect((await stack.call('GET', '/dhcp/leases?state=nope')).status).toBe(422);
    expect((await stack.call('GET', '/dhcp/leases?limit=0')).status).toBe(422);
    expect((await stack.call('GET', '/dhcp/leases?network=nope')).status).toBe(404);
  });
});
