-- name: InsertAPIKey :one
INSERT INTO picloud.api_keys (name, scope, prefix, hash)
VALUES (@name, @scope, @prefix, @hash)
RETURNING id, name, scope, prefix, created_at, last_used_at, revoked_at;

-- name: UseAPIKey :one
-- Looks a key up by its hash and records its use, in one statement.
UPDATE picloud.api_keys
SET last_used_at = clock_timestamp()
WHERE hash = @hash AND revoked_at IS NULL
RETURNING id, name, scope;

-- name: ListAPIKeys :many
SELECT id, name, scope, prefix, created_at, last_used_at, revoked_at
FROM picloud.api_keys
ORDER BY id;

-- name: RevokeAPIKey :one
UPDATE picloud.api_keys
SET revoked_at = coalesce(revoked_at, clock_timestamp())
WHERE id = @id
RETURNING id, name, scope, prefix, created_at, last_used_at, revoked_at;
