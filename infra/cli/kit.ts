import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError, Client, exitCodes } from './client.js';
import { resolveConfig } from './config.js';
import { type Format, render } from './output.js';

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

export interface Globals {
  endpoint?: string;
  key?: string;
  cacert?: string;
  format: Format;
}

export const enc = encodeURIComponent;
/** Ids are numbers, names strings (the API takes either). */
export const ref = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);

/** Checks a grammar word: `bind X to Y`. */
export const word = (got: string, want: string, usage: string) => {
  if (got !== want) throw new CliError(`expected "${want}" in: crowbar ${usage}`, exitCodes.usage);
};

/** A value for `set … to VALUE`: JSON when it parses (`{"value": …}` unwrapped), else the string. */
export const value = (arg: string) => {
  try {
    const v = JSON.parse(arg) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) && 'value' in v ? v.value : v;
  } catch {
    return arg;
  }
};

/** A query string of the options given. */
export const query = (o: Record<string, string | undefined>) => {
  const q = new URLSearchParams(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));
  return q.size ? `?${q}` : '';
};

/**
 * The pieces every command is built from: the client for the global options, printing in the chosen
 * format, JSON arguments, and the shapes most collections share (crud, a PUT verb, attribs).
 */
export function createKit(program: Command, deps: CliDeps) {
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

  return {
    program,
    deps,
    globals,
    client,
    print,
    api,
    json,
    createArg,
    word,
    value,
    query,
    group,
    crud,
    put,
    attribs,
    bindNodeRole,
  };
}
export type Kit = ReturnType<typeof createKit>;
