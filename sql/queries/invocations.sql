-- name: EnqueueInvocation :one
SELECT picloud.enqueue_invocation(
    @function::text,
    @trigger::text,
    sqlc.narg('request')::jsonb,
    sqlc.narg('request_body')::bytea,
    sqlc.narg('payload')::jsonb,
    @timeout_ms::integer
)::bigint AS id;

-- name: StartInvocation :one
-- Claims the invocation for a run and returns what the run needs. A row that
-- is already finished (or cancelled) is not returned, so a redelivered job
-- does not run twice. The source is missing when the function was deleted
-- after the invocation was queued.
WITH started AS (
    UPDATE picloud.invocations i
    SET status = 'running', started_at = clock_timestamp(), attempt = i.attempt + 1
    WHERE i.id = @id AND i.status IN ('queued', 'running')
    RETURNING i.id, i.function, i.function_version, i.function_version_id, i.trigger, i.request, i.request_body,
              i.payload, i.attempt, i.max_attempts, i.timeout_ms, i.created_at, i.started_at
)
SELECT s.id, s.function, s.function_version, s.function_version_id, s.trigger, s.request, s.request_body,
       s.payload, s.attempt, s.max_attempts, s.timeout_ms, s.created_at, s.started_at,
       v.source
FROM started s
LEFT JOIN picloud.function_versions v ON v.id = s.function_version_id;

-- name: FinishInvocation :one
-- The trigger invocations_announce_finished sends the NOTIFY.
UPDATE picloud.invocations
SET status = @status, result = sqlc.narg('result'), error = sqlc.narg('error'),
    logs = @logs, finished_at = clock_timestamp()
WHERE id = @id AND status = 'running'
RETURNING started_at, finished_at;

-- name: GetInvocation :one
SELECT id, function, function_version, trigger, status, request, request_body, payload, result, error, logs,
       attempt, max_attempts, timeout_ms, created_at, started_at, finished_at
FROM picloud.invocations
WHERE id = @id;
