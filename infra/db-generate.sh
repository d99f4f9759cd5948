#!/usr/bin/env bash
# Generates drizzle-kit migrations for every service that owns a schema.
set -euo pipefail
cd "$(dirname "$0")/.."
for schema in services/*/db/schema.ts; do
  svc=$(basename "$(dirname "$(dirname "$schema")")")
  SERVICE="$svc" npx drizzle-kit generate --config infra/drizzle.config.ts ${1:+--name "$1"}
done
# The migration journal lives inside the service's own schema, which exists before the first migration runs.
sed -i -E 's/^CREATE SCHEMA "([a-z_]+)";/CREATE SCHEMA IF NOT EXISTS "\1";/' services/*/db/migrations/*.sql
