-- name: KVGet :one
SELECT value FROM picloud.kv
WHERE function = @function AND key = @key AND (expires_at IS NULL OR expires_at > clock_timestamp());

-- name: KVList :many
-- Live keys with the prefix, in byte order, from the first one after
-- @after (exclusive) so that a long listing can be paged.
SELECT key, value FROM picloud.kv
WHERE function = @function AND key >= @prefix AND starts_with(key, @prefix) AND key > @after
  AND (expires_at IS NULL OR expires_at > clock_timestamp())
ORDER BY key
LIMIT @max_rows;

-- name: KVIncr :one
SELECT picloud.kv_incr(@function, @key, (@by::float8)::numeric)::float8 AS value;

-- name: ReserveInvocationID :one
SELECT picloud.reserve_invocation_id(@function)::bigint AS id;

-- name: PayloadStoredSize :one
-- The size a payload would have as stored, against the most an invocation
-- may have; the script's picloud.invoke asks only for large payloads.
SELECT pg_column_size(@payload::jsonb)::integer AS size, picloud.max_payload_bytes()::integer AS max;

-- name: ListFunctionEnv :many
SELECT name, value, secret FROM picloud.function_env WHERE function = @function ORDER BY name;

-- name: SetFunctionEnv :exec
INSERT INTO picloud.function_env (function, name, value, secret)
VALUES (@function, @name, @value, @secret)
ON CONFLICT (function, name) DO UPDATE SET value = excluded.value, secret = excluded.secret;

-- name: DeleteFunctionEnv :execrows
DELETE FROM picloud.function_env WHERE function = @function AND name = @name;
