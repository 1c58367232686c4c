-- Runs before any migration, on the migration connection: River's migrations
-- and PiCloud's own both create their tables in this schema, which keeps the
-- user's public schema clean.
CREATE SCHEMA IF NOT EXISTS picloud;

-- The migrations applied, one row each.
CREATE TABLE IF NOT EXISTS picloud.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every set of function files ever applied, by its SHA-256: the newest row
-- is the code the database runs. A build applies its functions when they
-- are not that code, unless they were applied before and replaced since:
-- such a build is older than the database's code (a node of the previous
-- release restarting during a rolling deploy), and must not undo it.
CREATE TABLE IF NOT EXISTS picloud.schema_functions (
    digest     text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
