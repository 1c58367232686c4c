-- name: EnqueueInvocation :one
SELECT i.id, i.status, i.timeout_ms
FROM picloud.enqueue_invocation(
    @function::text,
    @trigger::text,
    sqlc.narg('request')::jsonb,
    sqlc.narg('request_body')::bytea,
    sqlc.narg('payload')::jsonb,
    sqlc.narg('timeout_ms')::integer,
    sqlc.narg('max_attempts')::integer,
    sqlc.narg('idempotency_key')::text,
    sqlc.narg('run_at')::timestamptz,
    @authenticated::boolean,
    sqlc.narg('trace_parent')::text,
    NULL
) i;

-- name: InvokeHere :one
-- Writes the invocation and, when it can start at once on this node, starts
-- it (see picloud.enqueue_invocation with a node): then started_at is set and the row carries
-- what StartInvocations returns. Otherwise it was enqueued for any worker.
SELECT i.id, i.function, i.function_version, i.function_version_id, i.trigger, i.request, i.request_body,
       i.payload, i.attempt, i.max_attempts, i.timeout_ms, i.idempotency_key, i.run_at, i.parent_id,
       i.created_at, i.started_at, i.trace_parent, i.depth, picloud.max_invocation_depth() AS max_depth,
       f.retry_backoff_ms, f.http_allow, f.max_instructions, v.source,
       (SELECT jsonb_object_agg(e.name, e.value) FROM picloud.function_env e WHERE e.function = i.function AND NOT e.secret) AS env,
       (SELECT jsonb_object_agg(e.name, e.value) FROM picloud.function_env e WHERE e.function = i.function AND e.secret) AS secrets,
       (SELECT w.until > now() FROM picloud.event_watch w) AS watched,
       (extract(epoch FROM picloud.rescue_grace()) * 1000)::bigint AS rescue_grace_ms
FROM picloud.enqueue_invocation(
    @function::text,
    @trigger::text,
    sqlc.narg('request')::jsonb,
    sqlc.narg('request_body')::bytea,
    sqlc.narg('payload')::jsonb,
    sqlc.narg('timeout_ms')::integer,
    sqlc.narg('max_attempts')::integer,
    NULL,
    NULL,
    @authenticated::boolean,
    sqlc.narg('trace_parent')::text,
    @node::text
) i
LEFT JOIN picloud.function_versions v ON v.id = i.function_version_id
LEFT JOIN picloud.functions f ON f.name = i.function;

-- name: StartInvocations :many
-- Starts the queued invocations among @ids (see picloud.start_invocations)
-- and returns what their runs need. The source is missing when the function
-- was deleted after the invocation was queued. A function's env and
-- secrets are aggregated once per function, not once per invocation.
WITH started AS (
    SELECT * FROM picloud.start_invocations(@ids::bigint[])
), env AS (
    SELECT e.function,
           jsonb_object_agg(e.name, e.value) FILTER (WHERE NOT e.secret) AS env,
           jsonb_object_agg(e.name, e.value) FILTER (WHERE e.secret) AS secrets
    FROM picloud.function_env e
    WHERE e.function IN (SELECT DISTINCT s.function FROM started s)
    GROUP BY e.function
)
SELECT i.id, i.function, i.function_version, i.function_version_id, i.trigger, i.request, i.request_body,
       i.payload, i.attempt, i.max_attempts, i.timeout_ms, i.idempotency_key, i.run_at, i.parent_id,
       i.created_at, i.started_at, i.trace_parent, i.depth, picloud.max_invocation_depth() AS max_depth,
       f.retry_backoff_ms, f.http_allow, f.max_instructions, v.source,
       env.env, env.secrets,
       (SELECT w.until > now() FROM picloud.event_watch w) AS watched,
       (extract(epoch FROM picloud.rescue_grace()) * 1000)::bigint AS rescue_grace_ms
FROM started i
LEFT JOIN picloud.function_versions v ON v.id = i.function_version_id
LEFT JOIN picloud.functions f ON f.name = i.function
LEFT JOIN env ON env.function = i.function;

-- name: FinishInvocations :many
-- Records many outcomes in one statement (see picloud.finish_invocations);
-- an attempt that no longer runs is missing from the rows returned.
SELECT i.id, i.started_at, i.finished_at, i.errors
FROM picloud.finish_invocations(@ids::bigint[], @attempts::integer[], @statuses::text[], @results::jsonb[],
                                @errors::text[], @logs::jsonb[], @kv::jsonb[], @invokes::jsonb[]) i;

-- name: HandBack :one
SELECT picloud.hand_back(@id, @attempt::integer)::boolean AS handed_back;

-- name: RetryInvocation :one
SELECT i.id FROM picloud.retry_invocation(@id, @attempt::integer, @error, @logs, @due) i;

-- name: CancelInvocation :one
SELECT picloud.cancel(@id)::text AS status;

-- name: CancelledAmong :many
-- Which of the invocations this node runs were cancelled; read after the
-- listener reconnects, when picloud_cancel notifications may have been lost.
SELECT id FROM picloud.invocations WHERE id = ANY(@ids::bigint[]) AND status = 'cancelled';

-- name: PromoteDue :one
-- Seconds until the next scheduled attempt or rescue check is due, by the
-- database's clock so that the application's clock skew stays out of it;
-- 0 when it is already due, -1 when nothing is. (greatest ignores a NULL,
-- hence the CASE.)
SELECT (CASE WHEN next_due IS NULL THEN -1
             ELSE greatest(extract(epoch FROM next_due - clock_timestamp()), 0) END)::float8 AS wait_seconds
FROM picloud.promote_due() AS next_due;

-- name: Sweep :one
-- Seconds until the next finished invocation or job falls out of
-- retention; 0 when one already has, -1 when nothing is finished.
SELECT (CASE WHEN next_due IS NULL THEN -1
             ELSE greatest(extract(epoch FROM next_due - clock_timestamp()), 0) END)::float8 AS wait_seconds
FROM picloud.sweep() AS next_due;

-- name: WakeChannel :one
SELECT picloud.wake_channel()::text AS channel;

-- name: GetInvocation :one
SELECT id, function, function_version, trigger, status, request, request_body, payload, result, error, errors,
       logs, attempt, max_attempts, timeout_ms, idempotency_key, run_at, parent_id, created_at, started_at, finished_at
FROM picloud.invocations
WHERE id = @id;

-- name: ListInvocations :many
-- Newest first. A null filter matches everything; before_id is the cursor.
-- An error longer than 1024 bytes is cut to its first 1024 characters and
-- marked, so that a page stays small (500 rows hold at most about 2 MiB of
-- errors) whatever the stored errors; the invocation itself has the whole
-- error ('' when none). octet_length and left read a compressed or out-of-line value
-- without decompressing all of it.
SELECT id, function, function_version, trigger, status,
       coalesce(CASE WHEN octet_length(error) > 1024
                     THEN left(error, 1024) || '... [cut in lists: the invocation itself has the whole error]'
                     ELSE error END, '')::text AS error,
       attempt, max_attempts, timeout_ms,
       idempotency_key, run_at, parent_id, created_at, started_at, finished_at
FROM picloud.invocations
WHERE (sqlc.narg('function')::text IS NULL OR function = sqlc.narg('function'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('before_id')::bigint IS NULL OR id < sqlc.narg('before_id'))
ORDER BY id DESC
LIMIT @max_rows;

-- name: QueueDepth :one
SELECT coalesce(due, 0)::bigint AS due, coalesce(scheduled, 0)::bigint AS scheduled, coalesce(parked, 0)::bigint AS parked
FROM picloud.queue_depth();

-- name: WatchEvents :exec
-- Asks every writer of invocations to announce queued and running steps
-- until the given time (see picloud.event_watch).
UPDATE picloud.event_watch SET until = greatest(until, @until::timestamptz);

-- name: ChangedInvocations :many
-- Invocations whose latest step happened after @since, oldest first, for a
-- resumed event stream: their current state, not every step.
SELECT i.id, i.function, i.status, i.trigger, i.attempt, i.max_attempts, i.created_at, i.started_at, i.finished_at
FROM picloud.invocations i
WHERE greatest(i.created_at, i.started_at, i.finished_at) > @since::timestamptz
  AND (sqlc.narg('function')::text IS NULL OR i.function = sqlc.narg('function'))
  AND (sqlc.narg('id')::bigint IS NULL OR i.id = sqlc.narg('id'))
ORDER BY greatest(i.created_at, i.started_at, i.finished_at)
LIMIT 1000;

-- name: NotifyEvent :exec
-- A live log line, for the event streams (see picloud.event_watch).
SELECT pg_notify('picloud_events', @payload::text);
