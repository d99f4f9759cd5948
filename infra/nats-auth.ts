import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { type NatsPermissions, natsPermissions, toolsPermissions } from '../shared/bus/access.js';
import { type ServiceName, serviceNames } from '../shared/catalogue/index.js';

/**
 * NATS users for an installation: one per service (its permissions derived from the catalogue's grants,
 * `shared/catalogue/access.ts`), `tools` (read-only: the event stream) and `admin` (everything: the
 * operator's `nats` CLI, backups). Passwords are generated once into the state dir, mode 0600.
 */
export type NatsUser = ServiceName | 'tools' | 'admin';
export const natsUsers: readonly NatsUser[] = [...serviceNames, 'tools', 'admin'];
export type NatsCredentials = Record<NatsUser, string>;

/** Loads `file`, adding a password for any user it lacks (a new service); writes it back 0600. */
export function natsCredentials(file: string): NatsCredentials {
  let have: Partial<Record<string, string>> = {};
  if (existsSync(file)) {
    try {
      have = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      throw new Error(`${file} is not the JSON this launcher wrote: remove it and start again`);
    }
  }
  const creds = Object.fromEntries(
    natsUsers.map((u) => [u, typeof have[u] === 'string' ? have[u] : randomBytes(24).toString('base64url')]),
  ) as NatsCredentials;
  if (natsUsers.some((u) => have[u] !== creds[u]) || !existsSync(file))
    writeFileSync(file, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return creds;
}

/** nats-server's configuration syntax accepts JSON values; quoted strings are never variables. */
const block = (p: NatsPermissions) => JSON.stringify(p);

/** A `users: [ … ]` list for these users and bus prefix (inside `authorization` or an account). */
export function natsUsersList(creds: NatsCredentials, prefix: string): string {
  const users = natsUsers.map((u) => {
    const permissions =
      u === 'admin' ? null : u === 'tools' ? toolsPermissions(prefix) : natsPermissions(u, prefix);
    return `  { user: ${JSON.stringify(u)}, password: ${JSON.stringify(creds[u])}${
      permissions ? `, permissions: ${block(permissions)}` : ''
    } }`;
  });
  return `users: [\n${users.join(',\n')}\n]\n`;
}

/** The `authorization` block of a nats-server configuration (the launcher's own server). */
export const natsAuthorization = (creds: NatsCredentials, prefix: string) =>
  `authorization {\n${natsUsersList(creds, prefix)}}\n`;

/** `nats://user:password@host:port` for one user (the bus splits the credentials off again). */
export function natsUrlFor(url: string, user: NatsUser, creds: NatsCredentials): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(creds[user]);
  return u.toString().replace(/\/$/, '');
}
