import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { CliError, Client, exitCodes } from './client.js';
import { resolveConfig, writeConfig } from './config.js';
import { converge, convergeExit } from './converge.js';
import { formatEvent } from './events.js';
import { type Format, formats, render } from './output.js';
import { readEvents } from './sse.js';
import { addWebhookCommands } from './webhooks.js';

/** What the CLI needs from its process; main.ts hands over the real ones, tests may not need to. */
export interface CliDeps {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readStdin: () => string;
  /** Aborted on Ctrl-C, so `events --follow` and `converge` end cleanly. */
  signal: AbortSignal;
  version: string;
  /** The exit code of a command that finished without an error but did not succeed (converge). */
  setExitCode: (code: number) => void;
}

interface Globals {
  endpoint?: string;
  key?: string;
  cacert?: string;
  format: Format;
}

const enc = encodeURIComponent;

export const exitCodeHelp = `
Exit codes:
  0   done
  1   what the command waited for failed (converge: a noderole in error, or blocked)
  2   no operator token, or the token was refused (401) or may not do this (403)
  3   no Crowbar at the endpoint (nothing answers, or not a Crowbar gateway)
  4   Crowbar refused the request (not found, conflict, invalid input: the message names the field)
  5   Crowbar failed (HTTP 5xx, a service down)
  6   converge --timeout ran out
  64  bad command line

Configuration: --endpoint/--key/--cacert, else CROWBAR_ENDPOINT/CROWBAR_KEY/CROWBAR_CACERT, else the
file written by \`crowbar login\` (CROWBAR_CONFIG, default ~/.config/crowbar/config.json); endpoint
default http://127.0.0.1:3000.`;

/** The crowbar program: OpenCrowbar's grammar, `crowbar <objects> <verb> [args]` (reference §9). */
export function buildProgram(deps: CliDeps): Command {
  const program = new Command('crowbar')
    .description('Drive a Crowbar control plane: nodes, deployments, roles, noderoles, networks, the anneal.')
    .version(deps.version)
    .addOption(new Option('--endpoint <url>', 'gateway URL (CROWBAR_ENDPOINT)'))
    .addOption(new Option('--key <token>', 'operator token (CROWBAR_KEY)'))
    .addOption(
      new Option(
        '--cacert <file>',
        "CA or the gateway's own certificate to trust for https (CROWBAR_CACERT)",
      ),
    )
    .addOption(
      new Option('-f, --format <format>', 'output format').choices([...formats]).default('table' as Format),
    )
    .addHelpText('after', exitCodeHelp)
    .showSuggestionAfterError()
    .configureOutput({
      writeOut: (s) => deps.stdout.write(s),
      writeErr: (s) => deps.stderr.write(s),
    })
    .exitOverride();

  const globals = (cmd: Command) => cmd.optsWithGlobals() as Globals;
  const client = (cmd: Command) => {
    const g = globals(cmd);
    return new Client(resolveConfig({ endpoint: g.endpoint, key: g.key, cacert: g.cacert }, deps.env));
  };
  const print = (cmd: Command, value: unknown, kind?: string): void => {
    deps.stdout.write(`${render(value, globals(cmd).format, kind)}\n`);
  };
  /** An action that asks the API and prints the answer. */
  const api =
    (kind: string | undefined, f: (c: Client, ...args: string[]) => Promise<unknown>) =>
    async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      print(cmd, await f(client(cmd), ...(cmd.args as string[])), kind);
    };
  /** A JSON argument: inline, `@file`, or `-` for standard input. */
  const json = (arg: string, what: string): Record<string, unknown> => {
    const text =
      arg === '-' ? deps.readStdin() : arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new CliError(`${what} is not valid JSON: ${text.slice(0, 60)}`, exitCodes.usage);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new CliError(`${what} must be a JSON object`, exitCodes.usage);
    return v as Record<string, unknown>;
  };
  /** `create NAME` is short for `create '{"name":"NAME"}'`. */
  const createArg = (arg: string, what: string) => (/^[\s{@-]/.test(arg) ? json(arg, what) : { name: arg });
  const word = (got: string, want: string, usage: string) => {
    if (got !== want) throw new CliError(`expected "${want}" in: crowbar ${usage}`, exitCodes.usage);
  };
  /** A value for `set … to VALUE`: JSON when it parses (`{"value": …}` unwrapped), else the string. */
  const value = (arg: string) => {
    try {
      const v = JSON.parse(arg) as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) && 'value' in v ? v.value : v;
    } catch {
      return arg;
    }
  };
  const query = (o: Record<string, string | undefined>) => {
    const q = new URLSearchParams(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));
    return q.size ? `?${q}` : '';
  };

  const group = (name: string, description: string, aliases: string[] = []) => {
    const g = program.command(name).description(description);
    for (const a of aliases) g.alias(a);
    return g;
  };

  /** list, show, create, update, destroy on one collection. */
  const crud = (
    g: Command,
    path: string,
    kind: string,
    has: { create?: boolean; update?: boolean; destroy?: boolean } = {},
  ) => {
    g.command('list')
      .description(`list ${kind}`)
      .action(api(kind, (c) => c.call('GET', path)));
    g.command('show <id>')
      .description('show one (id or name)')
      .action(api(kind, (c, id) => c.call('GET', `${path}/${enc(id!)}`)));
    if (has.create !== false)
      g.command('create <json>')
        .description('create from JSON (inline, @file or -), or just a name')
        .action(api(kind, (c, arg) => c.call('POST', path, createArg(arg!, 'the JSON to create'))));
    if (has.update !== false)
      g.command('update <id> <json>')
        .description('change fields from JSON')
        .action(api(kind, (c, id, arg) => c.call('PUT', `${path}/${enc(id!)}`, json(arg!, 'the update'))));
    if (has.destroy !== false)
      g.command('destroy <id>')
        .alias('delete')
        .description('delete one')
        .action(api(kind, (c, id) => c.call('DELETE', `${path}/${enc(id!)}`)));
  };
  const put = (g: Command, path: string, verb: string, description: string, as = verb) =>
    g
      .command(`${verb} <id>`)
      .description(description)
      .action(api(undefined, (c, id) => c.call('PUT', `${path}/${enc(id!)}/${as}`)));
  /** `get X attrib A` and `set X attrib A to VALUE`. */
  const attribs = (g: Command, path: string) => {
    g.command('get <id> <attrib> <name>')
      .description('read an attrib: get <id> attrib <name>')
      .action(
        api(undefined, (c, id, w, a) => {
          word(w!, 'attrib', `${g.name()} get <id> attrib <name>`);
          return c.call('GET', `${path}/${enc(id!)}/attribs/${enc(a!)}`);
        }),
      );
    g.command('set <id> <attrib> <name> <to> <value>')
      .description(`write an attrib: set <id> attrib <name> to <value or '{"value":…}'>`)
      .action(
        api(undefined, (c, id, w, a, to, v) => {
          word(w!, 'attrib', `${g.name()} set <id> attrib <name> to <value>`);
          word(to!, 'to', `${g.name()} set <id> attrib <name> to <value>`);
          return c.call('PUT', `${path}/${enc(id!)}/attribs/${enc(a!)}`, { value: value(v!) });
        }),
      );
  };
  const bindNodeRole = (c: Client, node: string, role: string, deployment: string | undefined) =>
    c.call('POST', '/node_roles', {
      node: ref(node),
      role,
      ...(deployment ? { deployment: ref(deployment) } : {}),
    });

  // nodes
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

  // deployments
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

  // node_roles
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

  // deployment_roles
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

  // roles
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

  // networks and their parts
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

  // dhcp
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

  // named tokens and the audit log
  const tokens = group('tokens', 'named operator tokens: list, create, revoke');
  tokens
    .command('list')
    .description('list tokens (names and roles; never the tokens)')
    .action(api('tokens', (c) => c.call('GET', '/tokens')));
  tokens
    .command('create <name>')
    .description('create a token; it is printed this once')
    .addOption(
      new Option('--role <role>', 'what it may do').choices(['admin', 'read-only']).default('read-only'),
    )
    .action(async (name: string, o: { role: string }, cmd: Command) =>
      print(cmd, await client(cmd).call('POST', '/tokens', { name, role: o.role }), 'tokens'),
    );
  tokens
    .command('revoke <token>')
    .description('revoke a token (id or name): every gateway refuses it within 1 s')
    .action(api('tokens', (c, t) => c.call('DELETE', `/tokens/${enc(t!)}`)));
  program
    .command('audit')
    .description('the audit log of mutating calls, newest first')
    .option('--token <name>', 'only calls made with this token')
    .option('--limit <n>', 'at most this many', '50')
    .option('--before <id>', 'cursor: entries older than this id')
    .action(async (o: Record<string, string | undefined>, cmd: Command) =>
      print(cmd, await client(cmd).call('GET', `/audit${query(o)}`), 'audit'),
    );

  // status
  program
    .command('anneal')
    .description('the anneal: failed, working, scheduled or finished, with noderoles per state')
    .action(api(undefined, (c) => c.call('GET', '/anneal')));
  program
    .command('runs')
    .description('runs in flight (--all: finished ones too)')
    .option('--all')
    .action(async (o: { all?: boolean }, cmd: Command) =>
      print(cmd, await client(cmd).call('GET', `/runs${o.all ? '?all=true' : ''}`), 'runs'),
    );
  program
    .command('health')
    .description("every service's health")
    .action(api('services', (c) => c.call('GET', '/health')));
  program
    .command('whoami')
    .description("the token's role")
    .action(api(undefined, (c) => c.call('GET', '/whoami')));

  program
    .command('converge [deployment]')
    .description(
      'wait for the anneal (of one deployment, or all): noderoles per state as they change; exit 1 listing each failed noderole with the tail of its run log',
    )
    .option('--timeout <seconds>', 'give up after this long (exit 6); default: wait', '0')
    .option('--lines <n>', 'run log lines to show per failed noderole', '20')
    .action(async (deployment: string | undefined, o: { timeout: string; lines: string }, cmd: Command) => {
      const seconds = Number(o.timeout);
      const lines = Number(o.lines);
      if (!Number.isFinite(seconds) || seconds < 0)
        throw new CliError('--timeout must be a number of seconds', exitCodes.usage);
      if (!Number.isInteger(lines) || lines < 0)
        throw new CliError('--lines must be a whole number', exitCodes.usage);
      const r = await converge(client(cmd), {
        deployment,
        timeoutMs: seconds * 1000,
        progress: deps.stderr,
        tailLines: lines,
      });
      const g = globals(cmd);
      if (g.format !== 'table') deps.stdout.write(`${render(r, g.format)}\n`);
      else {
        const what = deployment ? `deployment ${deployment}` : 'every committed deployment';
        const counts = Object.entries(r.counts)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ');
        const head = {
          converged: `${what} converged: ${counts || 'no noderoles'}`,
          failed: `${what} failed: ${r.failed.length} noderole${r.failed.length === 1 ? '' : 's'} in error (${counts})`,
          blocked: `${what} is stuck: ${r.blocked} noderoles blocked (${counts})`,
          timeout: `${what} did not converge within ${seconds} s (${counts})`,
        }[r.status];
        (r.status === 'converged' ? deps.stdout : deps.stderr).write(`${head}\n`);
        for (const f of r.failed) {
          deps.stderr.write(
            `\nnoderole ${f.id}: ${f.role} on ${f.node} (deployment ${f.deployment}) failed\n`,
          );
          deps.stderr.write(`${f.runlog ? f.runlog.replace(/^/gm, '  | ') : '  (empty run log)'}\n`);
        }
      }
      deps.setExitCode(convergeExit(r));
    });

  program
    .command('events')
    .description('the event stream (GET /api/v2/events): past events from --since, live ones with --follow')
    .option('--follow', 'keep streaming new events until interrupted')
    .option('--filter <patterns>', 'event types, comma-separated: noderole.*, node.changed, dhcp.> …')
    .option('--since <seq>', 'start after this stream sequence (the id each event shows)')
    .option('--count <n>', 'stop after this many events')
    .option('--idle <ms>', 'without --follow: stop once no event came for this long', '1000')
    .action(
      async (
        o: { follow?: boolean; filter?: string; since?: string; count?: string; idle: string },
        cmd: Command,
      ) => {
        if (o.since !== undefined && !/^\d+$/.test(o.since))
          throw new CliError('--since must be a stream sequence (a whole number)', exitCodes.usage);
        const count = o.count === undefined ? Number.POSITIVE_INFINITY : Number(o.count);
        const stop = new AbortController();
        const signal = AbortSignal.any([stop.signal, deps.signal]);
        let idle: NodeJS.Timeout | undefined;
        const quiet = () => {
          clearTimeout(idle);
          if (!o.follow) idle = setTimeout(() => stop.abort(), Number(o.idle));
        };
        let n = 0;
        const format = globals(cmd).format;
        for await (const e of readEvents(client(cmd), {
          filter: o.filter,
          since: o.since === undefined ? undefined : Number(o.since),
          signal,
          onConnected: quiet,
        })) {
          deps.stdout.write(`${formatEvent(e, format)}\n`);
          if (e.event === 'dropped')
            throw new CliError(`the gateway dropped the stream: ${e.data}`, exitCodes.server);
          if (++n >= count) break;
          quiet();
        }
        clearTimeout(idle);
      },
    );

  program
    .command('login')
    .description('check --endpoint/--key (or CROWBAR_ENDPOINT/CROWBAR_KEY) and save them for later commands')
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const cfg = resolveConfig({ endpoint: g.endpoint, key: g.key, cacert: g.cacert }, deps.env);
      const who = await new Client(cfg).call<{ role: string }>('GET', '/whoami');
      writeConfig(cfg.file, {
        endpoint: cfg.endpoint,
        key: cfg.key!,
        ...(cfg.cacert ? { cacert: cfg.cacert } : {}),
      });
      deps.stdout.write(`signed in to ${cfg.endpoint} as ${who.role}; saved to ${cfg.file}\n`);
    });

  program
    .command('completion [shell]')
    .description('print a shell completion script: bash (default) or zsh; e.g. source <(crowbar completion)')
    .action((shell: string | undefined) => {
      if (shell !== undefined && shell !== 'bash' && shell !== 'zsh')
        throw new CliError(`no completion for ${shell}: bash or zsh`, exitCodes.usage);
      deps.stdout.write(completionScript(program, shell ?? 'bash'));
    });
  addWebhookCommands(program, { client, print, format: (cmd) => globals(cmd).format, stderr: deps.stderr });
  return program;
}

/** Ids are numbers, names strings (the API takes either). */
const ref = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);

/** A bash (or zsh through bashcompinit) completion of objects and verbs, from the program itself. */
export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const names = (c: Command) => c.commands.flatMap((s) => [s.name(), ...s.aliases()]).join(' ');
  const cases = program.commands
    .filter((c) => c.commands.length)
    .map((c) => `    ${[c.name(), ...c.aliases()].join('|')}) words="${names(c)}" ;;`)
    .join('\n');
  return `${shell === 'zsh' ? 'autoload -U +X bashcompinit && bashcompinit\n' : ''}_crowbar() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${names(program)} --endpoint --key --cacert --format --help --version"
  elif [ "$COMP_CWORD" -eq 2 ]; then
    case \${COMP_WORDS[1]} in
${cases}
    esac
  fi
  case \${COMP_WORDS[COMP_CWORD-1]} in
    --format|-f) words="${formats.join(' ')}" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _crowbar crowbar
`;
}
