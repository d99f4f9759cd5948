import { defineConfig } from 'drizzle-kit';

// One config for every service: `SERVICE=<name> drizzle-kit generate --config infra/drizzle.config.ts`
// (npm run db:generate runs it for each). Each service's SQL lands in its own migrations folder.
const service = process.env.SERVICE;
if (!service) throw new Error('SERVICE must name the service whose migrations to generate');

export default defineConfig({
  dialect: 'postgresql',
  schema: `./services/${service}/db/schema.ts`,
  out: `./services/${service}/db/migrations`,
  schemaFilter: [service.replace(/-/g, '_')],
});
