#!/usr/bin/env node
// The `crowbar` command (package.json "bin"): plain JavaScript that loads the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
