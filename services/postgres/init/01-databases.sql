-- Roles and databases of the services, for the postgres container (docker-compose.yml).
-- The official postgres image runs this once, as the superuser, when it initialises an
-- empty data directory (the named volume); later starts skip it, so after changing it
-- run `docker compose down -v` to start from an empty cluster.
--
-- Same convention as scripts/db: each service (catalog, project, rules, gateway, stubs) gets a
-- LOGIN role and a database owned by it, both named after it, and the role's password is
-- its name. On Postgres 15 the owner of a database owns its public schema too
-- (pg_database_owner), so each service can create its tables there.
--
-- psql runs this file (with ON_ERROR_STOP); \gexec keeps it safe to run again by hand.

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', n, n)
  FROM unnest(ARRAY['catalog', 'project', 'rules', 'gateway', 'stubs']) AS n
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = n) \gexec

SELECT format('CREATE DATABASE %I OWNER %I', n, n)
  FROM unnest(ARRAY['catalog', 'project', 'rules', 'gateway', 'stubs']) AS n
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = n) \gexec
