-- name: LockFunctionForPut :one
-- Creates the function row if it is missing and locks it either way, so that
-- concurrent PUTs of one name serialize instead of racing to insert.
INSERT INTO picloud.functions (name, version)
VALUES (@name, 0)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING version, created_at;

-- name: CurrentSourceHash :one
SELECT source_sha256
FROM picloud.function_versions
WHERE function = @name AND version = @version;

-- name: InsertFunctionVersion :one
INSERT INTO picloud.function_versions (function, version, source, source_sha256)
VALUES (@name, @version, @source, @source_sha256)
RETURNING id, created_at;

-- name: SetFunctionVersion :one
UPDATE picloud.functions
SET version = @version, updated_at = clock_timestamp()
WHERE name = @name
RETURNING updated_at;

-- name: GetFunction :one
SELECT f.name, f.version, f.created_at, f.updated_at, v.source, v.source_sha256
FROM picloud.functions f
JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
WHERE f.name = @name;

-- name: ListFunctions :many
SELECT f.name, f.version, f.created_at, f.updated_at, v.source_sha256
FROM picloud.functions f
JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
ORDER BY f.name;

-- name: DeleteFunction :execrows
DELETE FROM picloud.functions WHERE name = @name;
