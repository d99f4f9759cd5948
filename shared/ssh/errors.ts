import { CrowbarError, type ErrorCode } from '../errors.js';

/**
 * Why an SSH attempt failed, as a short stable phrase. The aliveness probe records it as the node's
 * reason, and operators read it in `GET nodes/:id/health`.
 */
export type SshFailure =
  | 'host key mismatch'
  | 'connection refused'
  | 'no route to host'
  | 'ssh timeout'
  | 'ssh auth failed'
  | 'command timeout'
  | 'ssh error';

/** Base of every SSH failure; `reason` is the stable phrase, the message adds the host. */
export class SshError extends CrowbarError {
  override readonly code: ErrorCode = 'unavailable';
  readonly reason: SshFailure = 'ssh error';
}

/** The server presented a key other than the pinned one: never trust it, never retry silently. */
export class HostKeyMismatchError extends SshError {
  override readonly reason = 'host key mismatch';
  override readonly permanent = true;
}
/** TCP connection refused: the host is up but nothing listens (sshd stopped). */
export class SshConnectionRefusedError extends SshError {
  override readonly reason = 'connection refused';
}
/** The network says the host cannot be reached. */
export class SshUnreachableError extends SshError {
  override readonly reason = 'no route to host';
}
/** No complete handshake within the time allowed. */
export class SshTimeoutError extends SshError {
  override readonly reason = 'ssh timeout';
}
/** The server refused our key. */
export class SshAuthError extends SshError {
  override readonly reason = 'ssh auth failed';
  override readonly permanent = true;
}
/** A remote command ran past its time limit; it was sent SIGKILL and the channel closed. */
export class SshCommandTimeoutError extends SshError {
  override readonly reason = 'command timeout';
}
