import type { Command } from 'commander';
import { enc, type Kit, ref } from './kit.js';

/** `crowbar nodes …`: machines, their noderoles, addresses and attribs. */
export function addNodeCommands(kit: Kit): void {
  const { client, print, api, word, query, group, crud, put, attribs, bindNodeRole } = kit;
  const nodes = group('nodes', 'machines: list, show, create, update, destroy, propose, commit, bind, move');
  crud(nodes, '/nodes', 'nodes');
  put(nodes, '/nodes', 'propose', 'propose the node (its noderoles can be edited)');
  put(nodes, '/nodes', 'commit', "commit the node's proposed noderoles");
  nodes
    .command('bind <node> <to> <role>')
    .description('bind a role to the node: bind <node> to <role> (a proposed noderole)')
    .option('-d, --deployment <deployment>', "deployment of the noderole (default: the node's)")
    .action(async (node: string, to: string, role: string, opts: { deployment?: string }, cmd: Command) => {
      word(to, 'to', 'nodes bind <node> to <role>');
      print(cmd, await bindNodeRole(client(cmd), node, role, opts.deployment), 'noderoles');
    });
  nodes
    .command('move <node> <to> <deployment>')
    .description('move the node to a deployment: move <node> to <deployment>')
    .action(
      api('nodes', (c, node, to, d) => {
        word(to!, 'to', 'nodes move <node> to <deployment>');
        return c.call('PUT', `/nodes/${enc(node!)}`, { deployment: ref(d!) });
      }),
    );
  nodes
    .command('noderoles <node>')
    .alias('roles')
    .description("the node's noderoles")
    .action(api('noderoles', (c, n) => c.call('GET', `/nodes/${enc(n!)}/node_roles`)));
  nodes
    .command('addresses <node>')
    .description("the node's addresses")
    .option('--network <network>', 'only on this network')
    .action(async (n: string, o: { network?: string }, cmd: Command) =>
      print(
        cmd,
        await client(cmd).call('GET', `/nodes/${enc(n)}/addresses${query({ network: o.network })}`),
        'allocations',
      ),
    );
  attribs(nodes, '/nodes');
}

/** `crowbar deployments …`: create, propose, commit, recall, bind roles, graph. */
export function addDeploymentCommands(kit: Kit): void {
  const { api, word, group, crud, put } = kit;
  const deployments = group('deployments', 'deployments: create, propose, commit, recall, bind roles, graph');
  crud(deployments, '/deployments', 'deployments', { update: false });
  put(deployments, '/deployments', 'propose', 'propose the deployment (the annealer leaves it alone)');
  put(deployments, '/deployments', 'commit', 'commit the deployment (its noderoles start)');
  put(deployments, '/deployments', 'recall', 'recall the deployment (same as propose)');
  deployments
    .command('bind <deployment> <to> <role>')
    .description('add a role to the deployment: bind <deployment> to <role> (a deployment role)')
    .action(
      api('deployment_roles', (c, d, to, role) => {
        word(to!, 'to', 'deployments bind <deployment> to <role>');
        return c.call('POST', '/deployment_roles', { deployment: ref(d!), role });
      }),
    );
  for (const [verb, sub, kind] of [
    ['noderoles', 'node_roles', 'noderoles'],
    ['deployment_roles', 'deployment_roles', 'deployment_roles'],
    ['graph', 'graph', undefined],
    ['preview', 'preview', undefined],
  ] as const)
    deployments
      .command(`${verb} <deployment>`)
      .description(`the deployment's ${verb.replace('_', ' ')}`)
      .action(api(kind, (c, d) => c.call('GET', `/deployments/${enc(d!)}/${sub}`)));
}

/** `crowbar node_roles …`: a role on a node. */
export function addNodeRoleCommands(kit: Kit): void {
  const { client, print, api, json, query, group, put, attribs } = kit;
  const noderoles = group('node_roles', 'noderoles (a role on a node): retry, propose, commit, data', [
    'noderoles',
  ]);
  noderoles
    .command('list')
    .description('list noderoles')
    .option('--node <node>')
    .option('--deployment <deployment>')
    .option('--role <role>')
    .option('--state <state>')
    .action(async (o: Record<string, string | undefined>, cmd: Command) =>
      print(cmd, await client(cmd).call('GET', `/node_roles${query(o)}`), 'noderoles'),
    );
  noderoles
    .command('show <id>')
    .description('show one, with its run log')
    .action(api('noderoles', (c, id) => c.call('GET', `/node_roles/${enc(id!)}`)));
  noderoles
    .command('create <json>')
    .description('bind: {"node": …, "role": …, "deployment"?: …, "data"?: {…}}')
    .action(api('noderoles', (c, arg) => c.call('POST', '/node_roles', json(arg!, 'the noderole'))));
  noderoles
    .command('update <id> <json>')
    .description('replace the proposed data: update <id> \'{"data": {…}}\'')
    .action(
      api('noderoles', (c, id, arg) => c.call('PUT', `/node_roles/${enc(id!)}`, json(arg!, 'the update'))),
    );
  noderoles
    .command('destroy <id>')
    .alias('delete')
    .description('delete one (and its never-run children)')
    .action(api(undefined, (c, id) => c.call('DELETE', `/node_roles/${enc(id!)}`)));
  put(noderoles, '/node_roles', 'retry', 'run it again (from error)');
  put(noderoles, '/node_roles', 'propose', 'propose it (its data can be edited)');
  put(noderoles, '/node_roles', 'commit', 'commit it');
  attribs(noderoles, '/node_roles');
}

/** `crowbar deployment_roles …`: a role's data in a deployment. */
export function addDeploymentRoleCommands(kit: Kit): void {
  const { client, print, api, json, group, put, attribs } = kit;
  const droles = group('deployment_roles', "a role's data in a deployment: propose, commit", [
    'deploymentroles',
  ]);
  droles
    .command('list')
    .option('--deployment <deployment>')
    .description('list deployment roles')
    .action(async (o: { deployment?: string }, cmd: Command) =>
      print(
        cmd,
        await client(cmd).call(
          'GET',
          o.deployment ? `/deployments/${enc(o.deployment)}/deployment_roles` : '/deployment_roles',
        ),
        'deployment_roles',
      ),
    );
  droles
    .command('show <id>')
    .action(api('deployment_roles', (c, id) => c.call('GET', `/deployment_roles/${enc(id!)}`)));
  droles
    .command('create <json>')
    .description('{"deployment": …, "role": …, "data"?: {…}}')
    .action(
      api('deployment_roles', (c, arg) =>
        c.call('POST', '/deployment_roles', json(arg!, 'the deployment role')),
      ),
    );
  droles
    .command('update <id> <json>')
    .description('merge into the proposed data: update <id> \'{"data": {…}}\'')
    .action(
      api('deployment_roles', (c, id, arg) =>
        c.call('PUT', `/deployment_roles/${enc(id!)}`, json(arg!, 'the update')),
      ),
    );
  put(droles, '/deployment_roles', 'propose', 'reset the proposed data to the committed data');
  put(droles, '/deployment_roles', 'commit', 'commit the proposed data');
  attribs(droles, '/deployment_roles');
}

/** `crowbar roles …`: the barclamps' roles (read-only), and binding one to a node. */
export function addRoleCommands(kit: Kit): void {
  const { client, print, word, group, crud, bindNodeRole } = kit;
  const roles = group('roles', 'roles of the barclamps (read-only): list, show, bind');
  crud(roles, '/roles', 'roles', { create: false, update: false, destroy: false });
  roles
    .command('bind <role> <to> <node>')
    .description('bind the role to a node: bind <role> to <node>')
    .option('-d, --deployment <deployment>', "deployment of the noderole (default: the node's)")
    .action(async (role: string, to: string, node: string, opts: { deployment?: string }, cmd: Command) => {
      word(to, 'to', 'roles bind <role> to <node>');
      print(cmd, await bindNodeRole(client(cmd), node, role, opts.deployment), 'noderoles');
    });
}
