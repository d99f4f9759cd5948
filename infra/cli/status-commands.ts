import { type Command, Option } from 'commander';
import { CliError, Client, exitCodes } from './client.js';
import { resolveConfig, writeConfig } from './config.js';
import { converge, convergeExit } from './converge.js';
import { formatEvent } from './events.js';
import { enc, type Kit } from './kit.js';
import { render } from './output.js';
import { readEvents } from './sse.js';

/** `crowbar tokens …` and `crowbar audit`: named operator tokens and the audit log. */
export function addTokenCommands(kit: Kit): void {
  const { program, client, print, api, query, group } = kit;
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
}

/** `crowbar anneal`, `runs`, `health`, `whoami`. */
export function addStatusCommands(kit: Kit): void {
  const { program, client, print, api } = kit;
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
}

/** `crowbar converge`: waits for the anneal and says what failed. */
export function addConvergeCommand(kit: Kit): void {
  const { program, deps, globals, client } = kit;
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
}

/** `crowbar events`: the event stream, past and live. */
export function addEventsCommand(kit: Kit): void {
  const { program, deps, globals, client } = kit;
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
}

/** `crowbar login`: checks the endpoint and token and saves them. */
export function addLoginCommand(kit: Kit): void {
  const { program, deps, globals } = kit;
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
}
