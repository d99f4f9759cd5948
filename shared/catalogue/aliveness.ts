import type { StreamDecl } from './define.js';

/** Messages owned by the aliveness domain (filled in by its issue). */
export const alivenessMessages = {};
export const alivenessStreams: StreamDecl[] = [];
