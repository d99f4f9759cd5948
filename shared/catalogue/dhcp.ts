import type { StreamDecl } from './define.js';

/** Messages owned by the dhcp domain (filled in by its issue). */
export const dhcpMessages = {};
export const dhcpStreams: StreamDecl[] = [];
