-- name: EnqueueMany :many
-- One invocation per payload, in one statement (see picloud.enqueue_many);
-- the rows come back in payload order. idempotency_keys and run_ats are
-- NULL when no item has one; otherwise they hold an element per payload,
-- where an empty key and the zero time (0001-01-01, which pgx sends for
-- Go's zero time.Time) mean none, as in InvokeParams.
SELECT e.id::bigint AS id, e.status::text AS status
FROM picloud.enqueue_many(
    @function::text,
    @trigger::text,
    @payloads::jsonb[],
    (SELECT array_agg(nullif(k, '') ORDER BY n)
     FROM unnest(sqlc.narg('idempotency_keys')::text[]) WITH ORDINALITY AS k(k, n)),
    (SELECT array_agg(nullif(r, '0001-01-01 00:00:00+00'::timestamptz) ORDER BY n)
     FROM unnest(sqlc.narg('run_ats')::timestamptz[]) WITH ORDINALITY AS r(r, n)),
    sqlc.narg('trace_parent')::text
) WITH ORDINALITY AS e(id, status, n)
ORDER BY e.n;
