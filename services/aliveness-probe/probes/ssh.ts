import { connectSsh, SshError } from '../../../shared/ssh/index.js';

export interface SshProbeTarget {
  host: string;
  port: number;
  hostKey: string;
  privateKey: string;
  timeoutMs: number;
}

export interface SshProbeResult {
  ok: boolean;
  /** `ok`, or the SSH failure phrase (`host key mismatch`, `connection refused`, `ssh timeout`...). */
  reason: string;
}

/**
 * Logs in as root with the cluster key, verifying the pinned host key, and runs `echo alive` as the
 * original did. Login and command are each bounded by `timeoutMs`.
 */
export async function sshProbe(t: SshProbeTarget): Promise<SshProbeResult> {
  try {
    const session = await connectSsh({
      host: t.host,
      port: t.port,
      username: 'root',
      privateKey: t.privateKey,
      hostKey: t.hostKey,
      timeoutMs: t.timeoutMs,
    });
    try {
      // The login and the command each get the full allowance: session start-up (fork, shell) is slow
      // on a busy node and must not read as death.
      const r = await session.exec('echo alive', { timeoutMs: t.timeoutMs, maxOutputBytes: 4096 });
      if (r.code !== 0 || r.stdout.trim() !== 'alive') {
        return { ok: false, reason: `ssh command failed (exit ${r.code ?? r.signal})` };
      }
      return { ok: true, reason: 'ok' };
    } finally {
      await session.end();
    }
  } catch (err) {
    if (err instanceof SshError) return { ok: false, reason: err.reason };
    return { ok: false, reason: `ssh error: ${err instanceof Error ? err.message : String(err)}` };
  }
}
