/**
 * `npm run nats-users -- --out <file> [--credentials <file>] [--prefix crowbar]`: the NATS users of a
 * multi-machine installation (infra/deploy/README.md), with the permissions `npm start` gives its own
 * nats-server: one user per service, `tools` (read-only events) and `admin`. Writes the `users` list that
 * `infra/deploy/nats-cluster.conf` includes, and keeps the passwords in the credentials file (both mode
 * 0600; running it again keeps the passwords and refreshes the permissions).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { natsCredentials, natsUsers, natsUsersList } from './nats-auth.js';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    credentials: { type: 'string' },
    prefix: { type: 'string', default: 'crowbar' },
  },
});
if (!args.out) {
  console.error('nats-users: say where to write the users list, e.g. --out /etc/nats/crowbar-users.conf');
  process.exit(2);
}
if (!/^[a-z][a-z0-9_]{0,31}$/.test(args.prefix ?? '')) {
  console.error(
    'nats-users: --prefix must be lower-case letters, digits or _ (max 32), starting with a letter',
  );
  process.exit(2);
}
const out = resolve(args.out);
const credsFile = resolve(args.credentials ?? `${out.replace(/\.conf$/, '')}.credentials.json`);
const creds = natsCredentials(credsFile);
writeFileSync(out, natsUsersList(creds, args.prefix ?? 'crowbar'), { mode: 0o600 });
console.log(`wrote ${natsUsers.length} NATS users to ${out}; their passwords are in ${credsFile}`);
console.log('each service connects as itself: NATS_URL=nats://<service>:<password>@<nats node>:4222');
