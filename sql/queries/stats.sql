-- name: FinishedPerBucket :many
-- Finished invocations since a time, by bucket and status. It reads the
-- partial index on finished_at, so its cost follows the window, not the
-- table.
SELECT floor(extract(epoch FROM i.finished_at - @since::timestamptz) / @bucket_seconds::integer)::integer AS bucket,
       i.status, count(*) AS n
FROM picloud.invocations i
WHERE i.finished_at >= @since::timestamptz
GROUP BY 1, 2;

-- name: FinishedPerFunction :many
SELECT i.function, i.status, count(*) AS n
FROM picloud.invocations i
WHERE i.finished_at >= @since::timestamptz
GROUP BY 1, 2;

-- name: LastInvocationPerFunction :many
-- Each function's newest invocation, one index probe per function; a
-- function never invoked has no row.
SELECT f.name, l.id AS last_id, l.status AS last_status, l.created_at AS last_created_at
FROM picloud.functions f
CROSS JOIN LATERAL (
    SELECT i.id, i.status, i.created_at
    FROM picloud.invocations i
    WHERE i.function = f.name
    ORDER BY i.id DESC
    LIMIT 1
) l
ORDER BY f.name;
