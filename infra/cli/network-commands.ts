import type { Command } from 'commander';
import { enc, type Kit, ref } from './kit.js';

/** `crowbar networks …` and their ranges, routers and allocations. */
export function addNetworkCommands(kit: Kit): void {
  const { client, print, api, word, query, group, crud } = kit;
  const networks = group(
    'networks',
    'networks: list, show, create, update, destroy, ranges, routers, allocations',
  );
  crud(networks, '/networks', 'networks');
  for (const [verb, path, kind] of [
    ['ranges', '/network_ranges', 'ranges'],
    ['routers', '/network_routers', 'routers'],
    ['allocations', '/network_allocations', 'allocations'],
  ] as const)
    networks
      .command(`${verb} <network>`)
      .description(`the network's ${verb}`)
      .action(api(kind, (c, n) => c.call('GET', `${path}${query({ network: n })}`)));
  networks
    .command('allocate <network> <to> <node>')
    .description('give a node an address: allocate <network> to <node> [--range r] [--suggestion ip]')
    .option('--range <range>')
    .option('--suggestion <address>')
    .action(
      async (
        n: string,
        to: string,
        node: string,
        o: { range?: string; suggestion?: string },
        cmd: Command,
      ) => {
        word(to, 'to', 'networks allocate <network> to <node>');
        print(
          cmd,
          await client(cmd).call('POST', `/networks/${enc(n)}/allocate_ip`, { node: ref(node), ...o }),
          'allocations',
        );
      },
    );
  for (const [name, path, kind, alias] of [
    ['network_ranges', '/network_ranges', 'ranges', 'ranges'],
    ['network_routers', '/network_routers', 'routers', 'routers'],
    ['network_allocations', '/network_allocations', 'allocations', 'allocations'],
  ] as const) {
    const g = group(name, `network ${kind}`, [alias]);
    crud(g, path, kind, { update: kind !== 'allocations' });
  }
}

/** `crowbar dhcp …`: dhcp-db's leases, reservations and counters. */
export function addDhcpCommands(kit: Kit): void {
  const { client, print, api, query, group } = kit;
  const dhcp = group('dhcp', "dhcp-db's leases and reservations");
  dhcp
    .command('leases')
    .description('leases (a page; --after for the next)')
    .option('--state <state>', 'offered, bound, released, expired or declined')
    .option('--mac <mac>')
    .option('--node <id>')
    .option('--network <network>')
    .option('--after <address>', 'cursor: the last address of the previous page')
    .option('--limit <n>')
    .action(async (o: Record<string, string | undefined>, cmd: Command) =>
      print(cmd, await client(cmd).call('GET', `/dhcp/leases${query(o)}`), 'leases'),
    );
  dhcp
    .command('reservations')
    .option('--node <id>')
    .option('--mac <mac>')
    .action(async (o: Record<string, string | undefined>, cmd: Command) =>
      print(cmd, await client(cmd).call('GET', `/dhcp/reservations${query(o)}`)),
    );
  dhcp.command('stats').action(api(undefined, (c) => c.call('GET', '/dhcp/stats')));
}
