import { utils } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generateKeyPair, parsePinnedKey } from './keys.js';

describe('generateKeyPair', () => {
  it('always makes a pair that reads back, public half matching the private (ssh2 drops a leading zero byte 1 time in 256)', () => {
    for (let i = 0; i < 600; i++) {
      const k = generateKeyPair(`k${i}`);
      const pinned = parsePinnedKey(k.publicKey);
      expect(pinned.blob.length).toBe(51); // 4+11 type, 4+32 key
      const priv = utils.parseKey(k.privateKey);
      if (priv instanceof Error || Array.isArray(priv)) throw new Error(`private key ${i} unreadable`);
      expect(priv.getPublicSSH().equals(pinned.blob)).toBe(true);
    }
  });
});
