/**
 * Every test file runs with this: a service that sent, asked, answered or read something its grants in
 * `shared/catalogue/access.ts` do not allow fails the file, even when the test itself tolerated the error
 * (in production its NATS user would be refused the same thing).
 */
import { afterAll } from 'vitest';
import { accessViolations } from '../shared/bus/access.js';

afterAll(() => {
  if (accessViolations.length)
    throw new Error(`bus access refused:\n${[...new Set(accessViolations)].join('\n')}`);
});
