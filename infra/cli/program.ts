import { Command, Option } from 'commander';
import { CliError, exitCodes } from './client.js';
import {
  addDeploymentCommands,
  addDeploymentRoleCommands,
  addNodeCommands,
  addNodeRoleCommands,
  addRoleCommands,
} from './inventory-commands.js';
import { type CliDeps, createKit } from './kit.js';
import { addDhcpCommands, addNetworkCommands } from './network-commands.js';
import { type Format, formats } from './output.js';
import {
  addConvergeCommand,
  addEventsCommand,
  addLoginCommand,
  addStatusCommands,
  addTokenCommands,
} from './status-commands.js';
import { addWebhookCommands } from './webhooks.js';

export type { CliDeps } from './kit.js';

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

  const kit = createKit(program, deps);
  addNodeCommands(kit);
  addDeploymentCommands(kit);
  addNodeRoleCommands(kit);
  addDeploymentRoleCommands(kit);
  addRoleCommands(kit);
  addNetworkCommands(kit);
  addDhcpCommands(kit);
  addTokenCommands(kit);
  addStatusCommands(kit);
  addConvergeCommand(kit);
  addEventsCommand(kit);
  addLoginCommand(kit);
  program
    .command('completion [shell]')
    .description('print a shell completion script: bash (default) or zsh; e.g. source <(crowbar completion)')
    .action((shell: string | undefined) => {
      if (shell !== undefined && shell !== 'bash' && shell !== 'zsh')
        throw new CliError(`no completion for ${shell}: bash or zsh`, exitCodes.usage);
      deps.stdout.write(completionScript(program, shell ?? 'bash'));
    });
  addWebhookCommands(program, {
    client: kit.client,
    print: kit.print,
    format: (cmd) => kit.globals(cmd).format,
    stderr: deps.stderr,
  });
  return program;
}

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
