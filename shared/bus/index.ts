export * from './bus.js';
export * from './consume.js';
export * from './envelope.js';
export * from './streams.js';
