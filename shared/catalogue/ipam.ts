import type { StreamDecl } from './define.js';

/** Messages owned by the ipam domain (filled in by its issue). */
export const ipamMessages = {};
export const ipamStreams: StreamDecl[] = [];
