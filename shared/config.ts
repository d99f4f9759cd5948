import { z } from 'zod';
import { faultConfig } from './fault.js';

/** Raised once at start with every problem found, each naming the variable. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const natsUrl = z
  .string()
  .refine(
    (v) => /^(nats|tls|ws|wss):\/\/[^\s/]+(:\d+)?\/?$/.test(v),
    'must be a nats:// URL such as nats://127.0.0.1:4222',
  );
const pgUrl = z
  .string()
  .refine(
    (v) => /^postgres(ql)?:\/\/\S+$/.test(v),
    'must be a postgres:// URL such as postgres://user@host:5432/db',
  );

/** Settings every service reads. Names are the environment variables themselves. */
export const baseConfigSchema = z.object({
  NATS_URL: natsUrl.default('nats://127.0.0.1:4222'),
  /** PEM file of the CA that signed the NATS servers' certificates; the system's roots otherwise. */
  NATS_TLS_CA: z.string().min(1).optional(),
  DATABASE_URL: pgUrl.default('postgres://postgres@127.0.0.1:5432/crowbar'),
  CROWBAR_BUS_PREFIX: z
    .string()
    .regex(
      /^[a-z][a-z0-9_]{0,31}$/,
      'must be lower-case letters, digits or _ (max 32), starting with a letter',
    )
    .default('crowbar'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CROWBAR_INSTANCE: z.string().min(1).optional(),
  /** Connections each service process keeps to PostgreSQL at most. */
  CROWBAR_DB_POOL_MAX: z.coerce
    .number({ message: 'must be an integer from 1 to 200' })
    .int('must be an integer from 1 to 200')
    .min(1, 'must be an integer from 1 to 200')
    .max(200, 'must be an integer from 1 to 200')
    .default(5),
  /**
   * Copies JetStream keeps of each stream the services declare: 1 on one nats-server, 3 on a three-node
   * cluster (applied at every start, so raising it later moves existing streams too).
   */
  CROWBAR_STREAM_REPLICAS: z.coerce
    .number({ message: 'must be 1, 3 or 5' })
    .int('must be 1, 3 or 5')
    .refine((n) => n === 1 || n === 3 || n === 5, 'must be 1, 3 or 5')
    .default(1),
  /** Test-only fault injection (shared/fault.ts); unset in production. */
  ...faultConfig,
});
export type BaseConfig = z.infer<typeof baseConfigSchema>;

export const intFromEnv = (min: number, max: number) =>
  z.coerce
    .number({ message: `must be an integer from ${min} to ${max}` })
    .int(`must be an integer from ${min} to ${max}`)
    .min(min, `must be an integer from ${min} to ${max}`)
    .max(max, `must be an integer from ${min} to ${max}`);

/**
 * Parses the environment once. Empty strings count as unset, so `FOO=` falls back to the default.
 * Fails with a ConfigError listing every problem, each prefixed by its variable name.
 */
export function parseConfig<S extends z.ZodObject>(
  schema: S,
  env: Record<string, string | undefined>,
): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') cleaned[key] = v;
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const name = i.path.join('.') || '(config)';
    const got = typeof i.path[0] === 'string' ? cleaned[i.path[0]] : undefined;
    return `${name} ${i.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`;
  });
  throw new ConfigError(problems);
}
