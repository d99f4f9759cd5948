import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CliError, exitCodes } from './client.js';

/** OpenCrowbar's default endpoint was :3000 on the admin node; ours is the gateway's default port. */
export const defaultEndpoint = 'http://127.0.0.1:3000';

export interface StoredConfig {
  endpoint?: string;
  key?: string;
  /** PEM file of the CA (or the self-signed certificate) to trust for an https:// endpoint. */
  cacert?: string;
}

/** `CROWBAR_CONFIG`, else `$XDG_CONFIG_HOME/crowbar/config.json`, else `~/.config/crowbar/config.json`. */
export function configPath(env: Record<string, string | undefined>): string {
  if (env.CROWBAR_CONFIG) return env.CROWBAR_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME ?? '.', '.config');
  return join(base, 'crowbar', 'config.json');
}

export function readConfig(path: string): StoredConfig {
  if (!existsSync(path)) return {};
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as StoredConfig;
    return {
      ...(typeof c.endpoint === 'string' ? { endpoint: c.endpoint } : {}),
      ...(typeof c.key === 'string' ? { key: c.key } : {}),
      ...(typeof c.cacert === 'string' ? { cacert: c.cacert } : {}),
    };
  } catch (cause) {
    throw new CliError(
      `the config file ${path} is not valid JSON: run \`crowbar login\` again`,
      exitCodes.usage,
      {
        cause,
      },
    );
  }
}

/** Written by `crowbar login`: mode 0600, as it holds the token. */
export function writeConfig(path: string, config: StoredConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Flags win over the environment, which wins over the file written by `crowbar login`. */
export function resolveConfig(
  flags: { endpoint?: string | undefined; key?: string | undefined; cacert?: string | undefined },
  env: Record<string, string | undefined>,
): { endpoint: string; key: string | undefined; cacert: string | undefined; file: string } {
  const file = configPath(env);
  const stored = readConfig(file);
  const cacert = flags.cacert || env.CROWBAR_CACERT || stored.cacert;
  return {
    endpoint: flags.endpoint || env.CROWBAR_ENDPOINT || stored.endpoint || defaultEndpoint,
    key: flags.key || env.CROWBAR_KEY || stored.key,
    // Stored as an absolute path, so `crowbar login` from one directory works from any other.
    cacert: cacert ? resolve(cacert) : undefined,
    file,
  };
}
