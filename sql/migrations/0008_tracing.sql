-- Trace context. An invocation made inside a traced request carries that
-- request's W3C traceparent in its row, so that whichever worker runs it,
-- on whichever node, continues the same trace.
--
-- The column's default reads the transaction-local setting
-- picloud.trace_parent. enqueue_authorized_invocation sets it for the
-- statement it runs, so the row gets the value from the INSERT that
-- enqueue_invocation already does: no extra UPDATE, no change to
-- enqueue_invocation, and picloud.invoke keeps its signature. An
-- application can do the same around its own picloud.invoke calls:
--   SELECT set_config('picloud.trace_parent', '00-...-...-01', true);
-- (current_setting is '' rather than NULL once the setting was used in the
-- session; nullif maps that back to NULL.)
ALTER TABLE picloud.invocations
    ADD COLUMN trace_parent text DEFAULT nullif(current_setting('picloud.trace_parent', true), '');

DROP FUNCTION picloud.enqueue_authorized_invocation(text, text, jsonb, bytea, jsonb, integer, integer, text, timestamptz, boolean);

CREATE FUNCTION picloud.enqueue_authorized_invocation(
    p_function        text,
    p_trigger         text,
    p_request         jsonb,
    p_request_body    bytea,
    p_payload         jsonb,
    p_timeout_ms      integer,
    p_max_attempts    integer,
    p_idempotency_key text,
    p_run_at          timestamptz,
    p_authenticated   boolean,
    p_trace_parent    text
) RETURNS SETOF picloud.invocations
LANGUAGE plpgsql AS $$
BEGIN
    IF p_trigger = 'http' AND NOT p_authenticated
       AND EXISTS (SELECT 1 FROM picloud.functions WHERE name = p_function AND auth = 'key') THEN
        RAISE EXCEPTION 'picloud: function "%" needs an API key', p_function
            USING ERRCODE = 'PC401', HINT = 'Send Authorization: Bearer <key> with an invoke or admin key.';
    END IF;
    -- Local to the transaction: the caller's statement, or its own
    -- transaction when it has one. An empty string clears a value an
    -- earlier call in the same transaction set.
    PERFORM set_config('picloud.trace_parent', coalesce(p_trace_parent, ''), true);
    RETURN QUERY SELECT * FROM picloud.enqueue_invocation(
        p_function, p_trigger, p_request, p_request_body, p_payload,
        p_timeout_ms, p_max_attempts, p_idempotency_key, p_run_at);
END;
$$;

-- queue_depth counts queued invocations by what they wait for: a worker
-- (due), their time (scheduled: a run_at or a retry's backoff), or their
-- function's max_concurrency (parked). It serves the metrics scrape, so it
-- runs only when something scrapes. It walks River's job table by its
-- (state, queue) index, reads invocations by primary key, and counts parked
-- ones by their partial index: status has no index (one would make every
-- start a non-HOT update), so counting by status would scan every row kept
-- for the retention period.
CREATE FUNCTION picloud.queue_depth(OUT due bigint, OUT scheduled bigint, OUT parked bigint)
LANGUAGE sql STABLE AS $$
    SELECT
        count(*) FILTER (WHERE j.state = 'available' OR j.scheduled_at <= now()),
        count(*) FILTER (WHERE j.state <> 'available' AND j.scheduled_at > now()),
        (SELECT count(*) FROM picloud.invocations p WHERE p.parked)
    FROM picloud.river_job j
    JOIN picloud.invocations i ON i.id = (j.args->>'invocation_id')::bigint AND i.status = 'queued'
    WHERE j.queue = 'picloud' AND j.state IN ('available', 'scheduled', 'retryable');
$$;
