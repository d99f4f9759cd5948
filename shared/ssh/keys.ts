import ssh2 from 'ssh2';
import { ValidationError } from '../errors.js';

const { utils } = ssh2;

export interface SshKeyPair {
  /** OpenSSH private key (PEM-like `-----BEGIN OPENSSH PRIVATE KEY-----`). Never log it. */
  privateKey: string;
  /** One public key line, `ssh-ed25519 AAAA... comment`. */
  publicKey: string;
}

/** A fresh ed25519 key pair in OpenSSH formats (cluster keys, test host keys). */
export function generateKeyPair(comment = 'crowbar'): SshKeyPair {
  // ssh2 writes an ed25519 key whose first byte is zero (1 in 256) 31 bytes long, which nothing can
  // read back; such a pair is thrown away and made again.
  for (let attempt = 0; attempt < 50; attempt++) {
    const k = utils.generateKeyPairSync('ed25519', { comment });
    const publicKey = k.public.trim();
    const pub = utils.parseKey(publicKey);
    const priv = utils.parseKey(k.private);
    if (pub instanceof Error || Array.isArray(pub) || priv instanceof Error || Array.isArray(priv)) continue;
    if (!pub.getPublicSSH().equals(priv.getPublicSSH())) continue;
    return { privateKey: k.private, publicKey };
  }
  throw new Error('could not generate a readable ed25519 key pair');
}

/** Whether `text` is an OpenSSH private key ssh2 can use as it is (read back, not encrypted). */
export function isUsablePrivateKey(text: string): boolean {
  const parsed = utils.parseKey(text);
  return !(parsed instanceof Error) && !Array.isArray(parsed) && parsed.isPrivateKey();
}

export interface PinnedKey {
  /** Key type as on the wire, e.g. `ssh-ed25519`. */
  type: string;
  /** The public key blob the server must present, byte for byte. */
  blob: Buffer;
  /** The line without its comment, for logs and API output. */
  line: string;
}

/** Parses an OpenSSH public key line; a malformed one is a ValidationError naming `hostKey`. */
export function parsePinnedKey(line: string): PinnedKey {
  const parts = line.trim().split(/\s+/);
  const [type, b64] = parts;
  if (!type || !b64)
    throw new ValidationError('hostKey must be an OpenSSH public key line', { field: 'hostKey' });
  const parsed = utils.parseKey(`${type} ${b64}`);
  if (parsed instanceof Error || Array.isArray(parsed)) {
    throw new ValidationError(
      `hostKey is not a valid public key: ${parsed instanceof Error ? parsed.message : 'several keys'}`,
      {
        field: 'hostKey',
      },
    );
  }
  const blob = Buffer.from(b64, 'base64');
  if (!blob.equals(parsed.getPublicSSH())) {
    throw new ValidationError('hostKey blob does not match its type', { field: 'hostKey' });
  }
  return { type: parsed.type, blob, line: `${type} ${b64}` };
}

/**
 * Host key algorithms to offer so the server presents a key of the pinned type (a server with several
 * host keys would otherwise pick its favourite and look like a mismatch).
 */
export function hostKeyAlgorithms(type: string): string[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [type];
}
