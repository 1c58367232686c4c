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

-- name: UpdateFunction :one
-- Sets the version and the options; updated_at moves only when something
-- changed, so a repeated identical PUT leaves the row as it was.
UPDATE picloud.functions
SET version = @version,
    timeout_ms = sqlc.narg('timeout_ms'),
    max_attempts = @max_attempts,
    max_concurrency = sqlc.narg('max_concurrency'),
    retry_backoff_ms = @retry_backoff_ms,
    http_allow = @http_allow,
    max_instructions = sqlc.narg('max_instructions'),
    auth = @auth,
    log_retention = sqlc.narg('log_retention_ms')::bigint * interval '1 millisecond',
    expose_errors = @expose_errors,
    updated_at = CASE
        WHEN (version, timeout_ms, max_attempts, max_concurrency, retry_backoff_ms, http_allow, max_instructions, auth, log_retention, expose_errors)
             IS DISTINCT FROM (@version, sqlc.narg('timeout_ms')::integer, @max_attempts, sqlc.narg('max_concurrency')::integer,
                               @retry_backoff_ms, @http_allow::text[], sqlc.narg('max_instructions')::bigint, @auth::text,
                               sqlc.narg('log_retention_ms')::bigint * interval '1 millisecond', @expose_errors::boolean)
        THEN clock_timestamp() ELSE updated_at END
WHERE name = @name
RETURNING updated_at;

-- name: GetFunction :one
SELECT f.name, f.version, f.created_at, f.updated_at, f.timeout_ms, f.max_attempts, f.max_concurrency,
       f.retry_backoff_ms, f.http_allow, f.max_instructions, f.auth,
       coalesce((extract(epoch FROM f.log_retention) * 1000)::bigint, 0)::bigint AS log_retention_ms, f.expose_errors, v.source, v.source_sha256
FROM picloud.functions f
JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
WHERE f.name = @name;

-- name: ListFunctions :many
SELECT f.name, f.version, f.created_at, f.updated_at, f.timeout_ms, f.max_attempts, f.max_concurrency,
       f.retry_backoff_ms, f.http_allow, f.max_instructions, f.auth,
       coalesce((extract(epoch FROM f.log_retention) * 1000)::bigint, 0)::bigint AS log_retention_ms, f.expose_errors, v.source_sha256
FROM picloud.functions f
JOIN picloud.function_versions v ON v.function = f.name AND v.version = f.version
ORDER BY f.name;

-- name: DeleteFunction :execrows
DELETE FROM picloud.functions WHERE name = @name;

-- name: AdmitParked :exec
-- After a change of max_concurrency: a raised or removed limit lets parked
-- invocations run.
SELECT picloud.admit_parked(@name::text);

-- name: FunctionExposesErrors :one
-- Read by /fn only when an invocation failed for a caller without a key.
SELECT expose_errors FROM picloud.functions WHERE name = @name;
