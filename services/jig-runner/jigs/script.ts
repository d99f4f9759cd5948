import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JigJob } from '../../../shared/catalogue/index.js';
import { ValidationError } from '../../../shared/errors.js';
import { retrying } from '../../../shared/retry.js';
import {
  connectSsh,
  SshConnectionRefusedError,
  SshTimeoutError,
  SshUnreachableError,
} from '../../../shared/ssh/index.js';
import { flattenAttributes } from '../domain/flatten.js';
import { parseWallListing } from '../domain/wall.js';
import type { JigResult } from './types.js';

const runnerScript = readFileSync(new URL('./runner.sh', import.meta.url), 'utf8');

export interface ScriptTarget {
  host: string;
  port: number;
}

/** Lists every written attribute as `<path>\t<base64 value>`, one per line. */
const listWalls = (dir: string) =>
  `cd '${dir}/attrs' && find . -name wall -type f | sort | while read -r f; do p=\${f%/wall}; printf '%s\\t' "\${p#./}"; base64 -w0 "$f"; echo; done`;

/** How long a node that cannot be reached yet is tried again: a minute, or half the role's timeout. */
const reachWindowMs = (job: JigJob) => Math.min(60_000, (job.timeoutSeconds * 1000) / 2);

/**
 * Logs in to the node, trying again (1 s, 2 s, 4 s, … at most 10 s apart) while it cannot be reached —
 * no route, refused, no handshake in time — within `reachWindowMs`: a node just discovered may still be
 * moving from its anonymous lease to its reserved address, or starting sshd. A host key that does not
 * match or a refused login is never tried again.
 */
async function connectPatiently(job: JigJob, target: ScriptTarget, privateKey: string, hostKey: string) {
  let tries = 1;
  const login = () =>
    connectSsh({
      host: target.host,
      port: target.port,
      username: 'root',
      privateKey,
      hostKey,
      timeoutMs: 15_000,
    });
  try {
    return (
      await retrying(login, {
        retryable: (err) =>
          err instanceof SshUnreachableError ||
          err instanceof SshConnectionRefusedError ||
          err instanceof SshTimeoutError,
        until: Date.now() + reachWindowMs(job),
        delayMs: (n) => Math.min(10_000, 1000 * 2 ** (n - 1)),
        onRetry: () => void tries++,
      })
    ).value;
  } catch (err) {
    if (tries > 1 && err instanceof Error) err.message = `${err.message} (tried ${tries} times)`;
    throw err;
  }
}

/**
 * The script jig (reference §1.4): over SSH as root with the cluster key, the node's pinned host key
 * verified, upload attrs.json, the role's scripts and the runner; run them; read back what they wrote as
 * the wall. Nothing runs when the host key does not match.
 */
export async function runScriptJig(
  job: JigJob,
  target: ScriptTarget,
  privateKey: string,
): Promise<JigResult> {
  if (!job.node.sshHostKey) {
    throw new ValidationError(
      `node ${job.node.name} has no pinned SSH host key; register it before running scripts`,
      { field: 'sshHostKey' },
    );
  }
  const session = await connectPatiently(job, target, privateKey, job.node.sshHostKey);
  const dir = `/tmp/scriptjig-${job.runId}-${randomBytes(4).toString('hex')}`;
  try {
    const mk = await session.exec(`mkdir -m 700 -p '${dir}/${job.role}'`, { timeoutMs: 15_000 });
    if (mk.code !== 0) throw new Error(`cannot create ${dir} on ${job.node.name}: ${mk.stderr}`);
    await session.putFile(`${dir}/attrs.json`, JSON.stringify(job.data), { mode: 0o600 });
    await session.putFile(`${dir}/attrs.flat`, flattenAttributes(job.data), { mode: 0o600 });
    await session.putFile(`${dir}/runner`, runnerScript, { mode: 0o700 });
    for (const [name, body] of Object.entries(job.scripts))
      await session.putFile(`${dir}/${job.role}/${name}`, body, { mode: 0o600 });
    const run = await session.exec(`/bin/bash '${dir}/runner' '${dir}' '${job.role}'`, {
      timeoutMs: job.timeoutSeconds * 1000,
    });
    const log = `${run.stdout}${run.stderr ? `\n--- stderr ---\n${run.stderr}` : ''}`;
    if (run.code !== 0)
      return {
        ok: false,
        wall: null,
        log: `${log}\nscripts of ${job.role} failed with exit code ${run.code}`,
      };
    const listing = await session.exec(listWalls(dir), { timeoutMs: 30_000 });
    if (listing.code !== 0)
      return {
        ok: false,
        wall: null,
        log: `${log}\ncould not read back written attributes: ${listing.stderr}`,
      };
    const { wall, rejected } = parseWallListing(listing.stdout);
    const note = rejected.length ? `\nignored attributes with invalid paths: ${rejected.join(', ')}` : '';
    return { ok: true, wall, log: log + note };
  } finally {
    await session.exec(`rm -rf '${dir}'`, { timeoutMs: 15_000 }).catch(() => undefined);
    await session.end();
  }
}
