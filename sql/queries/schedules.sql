-- name: PutSchedule :one
INSERT INTO picloud.schedules AS s (function, name, cron, timezone, payload, enabled, next_run_at)
VALUES (@function, @name, @cron, @timezone, @payload, @enabled, sqlc.narg('next_run_at'))
ON CONFLICT (function, name) DO UPDATE
    SET cron = excluded.cron, timezone = excluded.timezone, payload = excluded.payload,
        enabled = excluded.enabled, next_run_at = excluded.next_run_at, updated_at = clock_timestamp()
RETURNING s.function, s.name, s.cron, s.timezone, s.payload, s.enabled, s.next_run_at, s.last_run_at,
          s.last_invocation_id, s.created_at, s.updated_at, (xmax = 0) AS created;

-- name: ListSchedules :many
SELECT function, name, cron, timezone, payload, enabled, next_run_at, last_run_at, last_invocation_id,
       created_at, updated_at
FROM picloud.schedules
WHERE sqlc.narg('function')::text IS NULL OR function = sqlc.narg('function')
ORDER BY function, name;

-- name: DeleteSchedule :execrows
DELETE FROM picloud.schedules WHERE function = @function AND name = @name;

-- name: LockDueSchedules :many
-- The due schedules this worker fires; another worker firing at the same
-- moment skips them.
SELECT function, name, cron, timezone, payload, next_run_at
FROM picloud.schedules
WHERE enabled AND next_run_at <= clock_timestamp()
ORDER BY next_run_at
LIMIT 100
FOR UPDATE SKIP LOCKED;

-- name: AdvanceSchedule :exec
UPDATE picloud.schedules
SET next_run_at = sqlc.narg('next_run_at'), last_run_at = @last_run_at, last_invocation_id = sqlc.narg('last_invocation_id')
WHERE function = @function AND name = @name;
