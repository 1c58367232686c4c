-- Runs before any migration, in the migration transaction: River's migrations
-- and PiCloud's own both create their tables in this schema, which keeps the
-- user's public schema clean.
CREATE SCHEMA IF NOT EXISTS picloud;

CREATE TABLE IF NOT EXISTS picloud.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
