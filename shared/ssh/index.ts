/** SSH client layer on ssh2 with pinned host keys; used by the aliveness probe and the jig-runner. */
export { connectSsh, type SshSession, type SshTarget } from './client.js';
export * from './errors.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { generateKeyPair, isUsablePrivateKey, parsePinnedKey, type SshKeyPair } from './keys.js';
