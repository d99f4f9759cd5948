import type { StreamDecl } from './define.js';

/** Messages owned by the dns domain (filled in by its issue). */
export const dnsMessages = {};
export const dnsStreams: StreamDecl[] = [];
