import { readFileSync } from 'node:fs';
import { CommanderError } from 'commander';
import { CliError, exitCodes } from './client.js';
import { buildProgram } from './program.js';

// The crowbar CLI's process: arguments, environment, signals and the exit code (README "The crowbar CLI").
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const interrupted = new AbortController();
process.once('SIGINT', () => interrupted.abort());
process.once('SIGTERM', () => interrupted.abort());
// `crowbar nodes list | head` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

const program = buildProgram({
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  readStdin: () => readFileSync(0, 'utf8'),
  signal: interrupted.signal,
  version,
  setExitCode: (code) => {
    process.exitCode = code;
  },
});
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with code 0; commander has already printed the reason.
    process.exitCode = err.exitCode === 0 ? 0 : exitCodes.usage;
  } else if (err instanceof CliError) {
    process.stderr.write(`crowbar: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`crowbar: unexpected failure: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 70;
  }
}
