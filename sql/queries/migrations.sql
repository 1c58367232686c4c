-- name: LockMigrations :exec
-- Serializes concurrent migrators until their session ends. A session lock,
-- not a transaction lock, because River's migrations must run one
-- transaction per version (one adds an enum value that the next uses).
SELECT pg_advisory_lock(@key::bigint);

-- name: SchemaMigrationsExists :one
SELECT (to_regclass('picloud.schema_migrations') IS NOT NULL)::boolean AS exists;

-- name: AppliedMigrations :many
SELECT version FROM picloud.schema_migrations ORDER BY version;

-- name: RecordMigration :exec
INSERT INTO picloud.schema_migrations (version, name) VALUES (@version, @name);

-- name: AppliedMigrationNames :many
SELECT version, name FROM picloud.schema_migrations ORDER BY version;

-- name: FunctionDigests :many
-- Newest first.
SELECT digest FROM picloud.schema_functions ORDER BY applied_at DESC, digest;

-- name: RecordFunctions :exec
INSERT INTO picloud.schema_functions (digest) VALUES (@digest)
ON CONFLICT (digest) DO UPDATE SET applied_at = clock_timestamp();
