import { type Logger, pino } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to read lines back. */
  destination?: pino.DestinationStream;
}

/** One structured logger per service; every line carries the service name. */
export function createLogger(service: string, opts: LogOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? 'info',
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.privateKey', '*.private_key', '*.token', '*.password'], censor: '[redacted]' },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
