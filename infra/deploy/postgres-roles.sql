-- One PostgreSQL role per service, each owning exactly its own schema (DESIGN.md §2, §8).
-- Run once as a superuser in the Crowbar database, then give each role a password:
--   psql -d crowbar -v ON_ERROR_STOP=1 -f infra/deploy/postgres-roles.sql
--   psql -d crowbar -c "ALTER ROLE crowbar_inventory PASSWORD '…'"      (and so on)
-- Each service then connects as its role: DATABASE_URL=postgres://crowbar_inventory:…@db:5432/crowbar
-- Running it again changes nothing. The gateway's schema holds operator tokens and the audit log.

-- Nobody gets anything by default: no temp tables, no objects in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $$
DECLARE
  -- service role => the schema it owns (as in services/<name>/service.ts)
  owners text[][] := ARRAY[
    ['crowbar_inventory',       'inventory'],
    ['crowbar_network_ipam',    'network_ipam'],
    ['crowbar_annealer',        'annealer'],
    ['crowbar_jig_runner',      'jig_runner'],
    ['crowbar_dhcp_db',         'dhcp_db'],
    ['crowbar_dns_db',          'dns_db'],
    ['crowbar_aliveness_probe', 'aliveness_probe'],
    ['crowbar_gateway',         'gateway']
  ];
  r text;
  s text;
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  FOR i IN 1 .. array_length(owners, 1) LOOP
    r := owners[i][1];
    s := owners[i][2];
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN', r);
    END IF;
    -- The owner may do anything in its schema (its migrations create tables there) ...
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', s, r);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', s, r);
    -- ... and nothing in any other: other roles get no USAGE on it.
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
    -- CONNECT, and CREATE because migrations start with `CREATE SCHEMA IF NOT EXISTS`, which
    -- PostgreSQL checks against the database even when the schema already exists. The schemas are
    -- all created above, so no role can take another's name.
    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO %I', current_database(), r);
  END LOOP;
END
$$;
